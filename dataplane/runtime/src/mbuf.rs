//! An owning packet buffer ([`Mbuf`]) and a fixed-size burst of them ([`MbufBurst`]).
//!
//! Frames are expected to be contiguous (one segment): that is what the engine works on.
//! [`Mbuf::data`]/[`Mbuf::data_mut`] give the *first segment* only; for a multi-segment mbuf
//! (from a PMD with scatter RX, which chance does not enable) [`Mbuf::is_contiguous`] is false
//! and [`Mbuf::len`] (the packet length) is larger than `data().len()`.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

pub use dpdk_sys::rte_mbuf;

use crate::mempool::Mempool;

/// The largest burst an [`MbufBurst`] holds (and the size of rx/tx bursts).
pub const BURST_SIZE: usize = 32;

/// Errors of mbuf operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbufError {
    /// The pool has no free mbuf.
    #[error("mempool {0:?} is exhausted")]
    PoolExhausted(String),
    /// Not enough room (headroom for `prepend`, tailroom for `append`, data for `adj`/`trim`).
    #[error("{op}({requested}): only {available} bytes available")]
    NoRoom {
        /// The operation.
        op: &'static str,
        /// The number of bytes asked for.
        requested: usize,
        /// The number of bytes there was room for.
        available: usize,
    },
}

/// An owned mbuf: freed (`rte_pktmbuf_free`, the whole chain) when dropped.
///
/// The mbuf's memory belongs to its [`Mempool`], which is never freed while any of its mbufs
/// is alive (it is leaked instead, with an error log).
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the sole owner of its mbuf; DPDK mbufs may be used and freed from any
// thread (a non-EAL thread just bypasses the mempool's per-lcore cache).
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only allows reads of the mbuf.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Allocates an empty mbuf from `pool` (`rte_pktmbuf_alloc`).
    ///
    /// # Errors
    ///
    /// [`MbufError::PoolExhausted`] when the pool is empty.
    pub fn alloc(pool: &Mempool) -> Result<Mbuf, MbufError> {
        // SAFETY: the pool is valid while `pool` is borrowed.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(m)
            .map(Mbuf)
            .ok_or_else(|| MbufError::PoolExhausted(pool.name().to_string()))
    }

    /// Allocates an mbuf holding a copy of `bytes`.
    ///
    /// # Errors
    ///
    /// [`MbufError::PoolExhausted`], or [`MbufError::NoRoom`] when `bytes` does not fit the
    /// data room (minus the headroom).
    pub fn from_slice(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf, MbufError> {
        let mut m = Mbuf::alloc(pool)?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Ok(m)
    }

    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as `self` lives.
        unsafe { self.0.as_ref() }
    }

    /// The data of the first segment (the whole frame when [`is_contiguous`](Self::is_contiguous)).
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: mtod points at `data_len` initialised bytes inside the mbuf's buffer
        // (DPDK invariant data_off + data_len <= buf_len), owned by us for the borrow of self.
        unsafe {
            std::slice::from_raw_parts(
                dpdk_sys::rte_pktmbuf_mtod::<u8>(self.0.as_ptr()),
                usize::from(m.data_len),
            )
        }
    }

    /// The data of the first segment, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.raw().data_len);
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(dpdk_sys::rte_pktmbuf_mtod::<u8>(self.0.as_ptr()), len)
        }
    }

    /// The packet length (all segments; `pkt_len`).
    pub fn len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// True when the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.raw().pkt_len == 0
    }

    /// The length of the first segment (`data_len`), i.e. `data().len()`.
    pub fn data_len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// The number of segments.
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// True when the whole packet is in the first segment, so [`data`](Self::data) is the frame.
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The free bytes in front of the data (room for [`prepend`](Self::prepend)).
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// The free bytes after the data of the last segment (room for [`append`](Self::append)).
    pub fn tailroom(&self) -> usize {
        // SAFETY: we own a valid mbuf; rte_pktmbuf_lastseg follows its valid chain.
        let last = unsafe { &*dpdk_sys::rte_pktmbuf_lastseg(self.0.as_ptr()) };
        usize::from(last.buf_len) - usize::from(last.data_off) - usize::from(last.data_len)
    }

    /// The input port of a received mbuf.
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`): `data()` then starts `n` bytes later.
    ///
    /// # Errors
    ///
    /// [`MbufError::NoRoom`] if the first segment holds fewer than `n` bytes (nothing changes).
    pub fn adj(&mut self, n: usize) -> Result<(), MbufError> {
        let available = self.data_len();
        let no_room = MbufError::NoRoom {
            op: "adj",
            requested: n,
            available,
        };
        let len = u16::try_from(n).map_err(|_| no_room.clone())?;
        // SAFETY: we own a valid mbuf; DPDK checks `len` against data_len.
        let p = unsafe { dpdk_sys::rte_pktmbuf_adj(self.0.as_ptr(), len) };
        if p.is_null() {
            return Err(no_room);
        }
        Ok(())
    }

    /// Keeps only the bytes `range` of a single-segment mbuf's data: the engine's rewrites as one
    /// update of `data_off`, `data_len` and `pkt_len` (what `adj` + `trim` do, without two FFI
    /// calls per packet).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoRoom`] for a multi-segment mbuf or a range beyond the data (nothing changes).
    #[inline]
    pub fn shrink_to(&mut self, range: core::ops::Range<usize>) -> Result<(), MbufError> {
        let available = self.data_len();
        if !self.is_contiguous() || range.start > range.end || range.end > available {
            return Err(MbufError::NoRoom {
                op: "shrink_to",
                requested: range.end,
                available,
            });
        }
        // Both fit u16: they are bounded by data_len, a u16.
        let (start, len) = (range.start as u16, (range.end - range.start) as u16);
        let m = self.0.as_ptr();
        // SAFETY: we own this valid single-segment mbuf exclusively; the new window
        // [data_off + start, data_off + start + len) lies inside its current data, so the buffer
        // invariants (data_off + data_len <= buf_len, pkt_len == data_len for one segment) hold.
        unsafe {
            (*m).data_off += start;
            (*m).data_len = len;
            (*m).pkt_len = u32::from(len);
        }
        Ok(())
    }

    /// Removes `n` bytes from the end (`rte_pktmbuf_trim`).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoRoom`] if the last segment holds fewer than `n` bytes (nothing changes).
    pub fn trim(&mut self, n: usize) -> Result<(), MbufError> {
        // SAFETY: we own a valid mbuf; rte_pktmbuf_lastseg follows its valid chain.
        let available =
            usize::from(unsafe { (*dpdk_sys::rte_pktmbuf_lastseg(self.0.as_ptr())).data_len });
        let no_room = MbufError::NoRoom {
            op: "trim",
            requested: n,
            available,
        };
        let len = u16::try_from(n).map_err(|_| no_room.clone())?;
        // SAFETY: we own a valid mbuf; DPDK checks `len` against the last segment's data_len.
        let rc = unsafe { dpdk_sys::rte_pktmbuf_trim(self.0.as_ptr(), len) };
        if rc != 0 {
            return Err(no_room);
        }
        Ok(())
    }

    /// Grows the data by `n` bytes at the front (`rte_pktmbuf_prepend`) and returns them (their
    /// content is whatever the headroom held: overwrite it).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoRoom`] if the headroom is smaller than `n` (nothing changes).
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let no_room = MbufError::NoRoom {
            op: "prepend",
            requested: n,
            available: self.headroom(),
        };
        let len = u16::try_from(n).map_err(|_| no_room.clone())?;
        // SAFETY: we own a valid mbuf; DPDK checks `len` against the headroom.
        let p = unsafe { dpdk_sys::rte_pktmbuf_prepend(self.0.as_ptr(), len) };
        if p.is_null() {
            return Err(no_room);
        }
        // SAFETY: `p` points at the `n` bytes just added in front of the data, inside the
        // mbuf's buffer, exclusively ours through `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Replaces the first `strip` bytes of a single-segment mbuf's data by `header_len` new
    /// bytes, in the buffer's headroom (the payload is not copied), keeps at most `keep` bytes
    /// after them (the rest of the data goes: a frame's Ethernet padding), and returns the new
    /// header (its content is whatever the buffer held: overwrite it) and the payload behind it.
    /// One update of `data_off`, `data_len` and `pkt_len`: what `trim`, `adj` then `prepend`
    /// do, with no FFI call and one check of the segment.
    ///
    /// # Errors
    ///
    /// [`MbufError::NoRoom`] for a multi-segment mbuf, a `strip` beyond the data, or a header
    /// beyond the headroom plus `strip` (nothing changes).
    #[inline]
    pub fn replace_front(
        &mut self,
        strip: usize,
        keep: usize,
        header_len: usize,
    ) -> Result<(&mut [u8], &[u8]), MbufError> {
        let data_len = self.data_len();
        let room = self.headroom() + strip;
        if !self.is_contiguous() || strip > data_len || header_len > room {
            return Err(MbufError::NoRoom {
                op: "replace_front",
                requested: header_len,
                available: if strip > data_len { 0 } else { room },
            });
        }
        // Both fit u16: data_off = room - header_len >= 0 lies before the old data's end, and
        // the new length, at most the old data's end less data_off, is bounded by the buffer
        // (data_off + data_len <= buf_len, a u16).
        let data_off = room - header_len;
        let kept = keep.min(data_len - strip);
        let len = header_len + kept;
        let m = self.0.as_ptr();
        // SAFETY: we own this valid single-segment mbuf exclusively; the new window
        // [data_off, data_off + len) starts inside the buffer (header_len <= room) and ends at or
        // before where the old data ended, so data_off + data_len <= buf_len and pkt_len ==
        // data_len (one segment) hold. The two slices are that window split at header_len
        // (<= len): disjoint, initialised bytes of the buffer (the headroom's content is
        // whatever it held), borrowed for as long as `&mut self`. Made from the window's start
        // rather than by `data_mut().split_at_mut`, whose length checks the compiler cannot
        // prove redundant.
        unsafe {
            (*m).data_off = data_off as u16;
            (*m).data_len = len as u16;
            (*m).pkt_len = len as u32;
            let start = (*m).buf_addr.cast::<u8>().add(data_off);
            let header = std::slice::from_raw_parts_mut(start, header_len);
            let payload = std::slice::from_raw_parts(start.add(header_len), kept);
            Ok((header, payload))
        }
    }

    /// Grows the data by `n` bytes at the end of the last segment (`rte_pktmbuf_append`) and
    /// returns them (their content is whatever the buffer held: overwrite it).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoRoom`] if the tailroom is smaller than `n` (nothing changes).
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let no_room = MbufError::NoRoom {
            op: "append",
            requested: n,
            available: self.tailroom(),
        };
        let len = u16::try_from(n).map_err(|_| no_room.clone())?;
        // SAFETY: we own a valid mbuf; DPDK checks `len` against the tailroom.
        let p = unsafe { dpdk_sys::rte_pktmbuf_append(self.0.as_ptr(), len) };
        if p.is_null() {
            return Err(no_room);
        }
        // SAFETY: `p` points at the `n` bytes just added at the end, inside the last segment's
        // buffer, exclusively ours through `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Gives up ownership: the caller must free the mbuf (or turn it back into an `Mbuf` with
    /// [`from_raw`](Self::from_raw)).
    pub fn into_raw(self) -> *mut rte_mbuf {
        ManuallyDrop::new(self).0.as_ptr()
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid mbuf from a pool of this crate (or a PMD fed by one), owned by the
    /// caller and not used through another pointer afterwards.
    ///
    /// # Panics
    ///
    /// If `ptr` is null.
    pub unsafe fn from_raw(ptr: *mut rte_mbuf) -> Mbuf {
        Mbuf(NonNull::new(ptr).expect("Mbuf::from_raw: null mbuf"))
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain) and never use it again.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("data_len", &self.data_len())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}

/// Up to [`BURST_SIZE`] owned mbufs in a fixed array, for rx/tx bursts without allocation.
/// Whatever it still owns is freed when it is dropped or [`clear`](Self::clear)ed.
pub struct MbufBurst {
    /// `mbufs[..len]` are owned, valid mbufs; the rest is garbage (null or stale).
    mbufs: [*mut rte_mbuf; BURST_SIZE],
    len: usize,
}

// SAFETY: the burst owns its mbufs like a Vec<Mbuf> would (Mbuf is Send + Sync).
unsafe impl Send for MbufBurst {}
// SAFETY: as above; `&MbufBurst` only gives `&Mbuf`s.
unsafe impl Sync for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBurst {
    /// An empty burst.
    pub const fn new() -> Self {
        Self {
            mbufs: [std::ptr::null_mut(); BURST_SIZE],
            len: 0,
        }
    }

    /// The number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when [`BURST_SIZE`] mbufs are held.
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    /// The number of mbufs that can still be added.
    pub fn free_slots(&self) -> usize {
        BURST_SIZE - self.len
    }

    /// Adds an mbuf at the end; gives it back if the burst is full.
    ///
    /// # Errors
    ///
    /// The mbuf itself, when the burst is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        // One check (the slot's index), not "full?" and then the index again.
        let Some(slot) = self.mbufs.get_mut(self.len) else {
            return Err(m);
        };
        *slot = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: mbufs[len] was owned by the burst and is no longer counted in it.
        Some(unsafe { Mbuf::from_raw(self.mbufs[self.len]) })
    }

    /// Removes the mbuf at `index`, replacing it with the last one (O(1), order not kept).
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    pub fn swap_remove(&mut self, index: usize) -> Mbuf {
        assert!(
            index < self.len,
            "MbufBurst::swap_remove: index {index} out of {}",
            self.len
        );
        let m = self.mbufs[index];
        self.len -= 1;
        self.mbufs[index] = self.mbufs[self.len];
        // SAFETY: `m` was owned by the burst and is no longer in it.
        unsafe { Mbuf::from_raw(m) }
    }

    /// The mbufs held.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout of
        // *mut rte_mbuf; the first `len` pointers are owned, non-null mbufs.
        unsafe { std::slice::from_raw_parts(self.mbufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, mutable (to edit their data in place).
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; `&mut self` makes the access exclusive. Through `&mut Mbuf`
        // a caller can only swap mbufs (still owned, non-null), never leave a null behind.
        unsafe { std::slice::from_raw_parts_mut(self.mbufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the mbufs held.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates mutably over the mbufs held.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Keeps the mbufs for which `keep` returns true (in order) and frees the others.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let end = std::mem::replace(&mut self.len, 0);
        // On every exit (panic in `keep` included) the guard frees the untouched tail and
        // sets `len` to the number kept.
        let mut g = RetainGuard {
            burst: self,
            kept: 0,
            next: 0,
            end,
        };
        while g.next < g.end {
            let i = g.next;
            g.next += 1;
            // SAFETY: slot i < end held an owned mbuf that nobody else owns now (len is 0 and
            // the guard only frees slots >= next); it is written back at `kept` <= i, or dropped.
            let mut m = unsafe { Mbuf::from_raw(g.burst.mbufs[i]) };
            if keep(&mut m) {
                g.burst.mbufs[g.kept] = m.into_raw();
                g.kept += 1;
            }
        }
    }

    /// Removes and yields all mbufs, in order. The burst is empty afterwards; mbufs not
    /// consumed from the iterator are freed when it is dropped.
    pub fn drain(&mut self) -> Drain<'_> {
        let len = std::mem::replace(&mut self.len, 0);
        Drain {
            rest: self.mbufs[..len].iter(),
        }
    }

    /// Frees every mbuf held (`rte_pktmbuf_free_bulk`) and returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = std::mem::replace(&mut self.len, 0);
        if n > 0 {
            // SAFETY: the first n pointers are owned mbufs, no longer counted in the burst.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), n as u32) };
        }
        n
    }

    /// Pointer to the free slots, for a PMD or ring to fill (rx, dequeue).
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut rte_mbuf {
        // SAFETY: len <= BURST_SIZE, so the offset stays within (or one past) the array.
        unsafe { self.mbufs.as_mut_ptr().add(self.len) }
    }

    /// Pointer to the held mbufs, for a PMD or ring to take (tx, enqueue).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut *mut rte_mbuf {
        self.mbufs.as_mut_ptr()
    }

    /// Records that `n` mbufs were written into the free slots.
    ///
    /// # Safety
    ///
    /// The `n` slots after `len` must now hold owned, valid mbufs, and `n <= free_slots()`.
    pub(crate) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(n <= self.free_slots());
        self.len += n;
    }

    /// Records that the first `n` mbufs were taken (by a PMD or a ring); the rest move to the
    /// front.
    ///
    /// # Safety
    ///
    /// The first `n` mbufs must have been given away, and `n <= len()`.
    pub(crate) unsafe fn taken_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        // Nearly always all were taken: no call to memmove for nothing.
        if n < self.len {
            self.mbufs.copy_within(n..self.len, 0);
        }
        self.len -= n;
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

struct RetainGuard<'a> {
    burst: &'a mut MbufBurst,
    kept: usize,
    next: usize,
    end: usize,
}

impl Drop for RetainGuard<'_> {
    fn drop(&mut self) {
        for i in self.next..self.end {
            // SAFETY: slots next..end were never taken out by retain_mut: still owned mbufs.
            drop(unsafe { Mbuf::from_raw(self.burst.mbufs[i]) });
        }
        self.burst.len = self.kept;
    }
}

/// The iterator of [`MbufBurst::drain`].
#[derive(Debug)]
pub struct Drain<'a> {
    /// The mbufs not yet yielded (a slice iterator: one compare per step, no index to check).
    rest: core::slice::Iter<'a, *mut rte_mbuf>,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        let p = *self.rest.next()?;
        // SAFETY: the slots not yet yielded are owned, valid (so non-null) mbufs; the burst's len
        // is 0, so each is owned by exactly one party. No null check: a test per packet.
        Some(Mbuf(unsafe { NonNull::new_unchecked(p) }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rest.size_hint()
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}
