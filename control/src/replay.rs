//! Offline replay: every frame of a capture through one engine with the configuration's static
//! flows, one JSON verdict line per frame, and optional pcaps of the accepted and forwarded frames.
//!
//! Each output file is written under a temporary name in its own directory and renamed into
//! place only when the whole replay succeeded: after a failure every output path is as it was
//! before the run (an earlier run's file is not mistaken for this one's, nor half overwritten).

use crate::config::Config;
use crate::pcapio::{CaptureError, CaptureReader, EthernetPcapWriter, FrameMeta};
use chance_engine::{Counters, Engine, Verdict};
use core::fmt;
use pcap_file::DataLink;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Where replay writes its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutputs {
    /// JSON Lines verdicts, one object per frame; `-` is standard output.
    pub verdicts: PathBuf,
    /// Classic pcap of the accepted (decapsulated) frames.
    pub accepted: Option<PathBuf>,
    /// Classic pcap of the forwarded (rewritten) frames.
    pub forwarded: Option<PathBuf>,
}

/// How many frames got each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictTally {
    /// Decapsulated for the host.
    pub accept: u64,
    /// Rewritten for the next hop.
    pub forward: u64,
    /// Handed on unchanged.
    pub pass: u64,
    /// Dropped.
    pub drop: u64,
}

impl VerdictTally {
    fn count(&mut self, verdict: Verdict) {
        let slot = match verdict {
            Verdict::Accept => &mut self.accept,
            Verdict::Forward => &mut self.forward,
            Verdict::Pass => &mut self.pass,
            Verdict::Drop => &mut self.drop,
        };
        *slot += 1;
    }
}

/// What a replay saw.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Frames read from the capture, Ethernet or not.
    pub frames: u64,
    /// Verdicts of the Ethernet frames.
    pub verdicts: VerdictTally,
    /// The engine's counters at the end.
    pub counters: Counters,
    /// Frames captured shorter than they were on the wire (snaplen): their verdicts may differ.
    pub short_captures: u64,
    /// Frames not replayed because their link type is not Ethernet (no verdict line).
    pub non_ethernet: u64,
    /// The first such frame: its index and link type.
    pub first_non_ethernet: Option<(u64, DataLink)>,
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.verdicts;
        writeln!(
            f,
            "frames {}: accept {}, forward {}, pass {}, drop {}",
            self.frames, v.accept, v.forward, v.pass, v.drop
        )?;
        if self.non_ethernet != 0 {
            writeln!(f, "not replayed (not Ethernet) {}", self.non_ethernet)?;
        }
        if self.short_captures != 0 {
            writeln!(
                f,
                "captured shorter than on the wire {}",
                self.short_captures
            )?;
        }
        for (counter, value) in self.counters.nonzero() {
            writeln!(f, "{} {value}", counter.name())?;
        }
        Ok(())
    }
}

/// A replay that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A path named on the command line cannot be opened (the capture) or created in (an
    /// output's directory): a usage error.
    #[error("{}: {error}", path.display())]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The capture cannot be opened or its header is bad.
    #[error("{}: {error}", path.display())]
    Input {
        /// The capture.
        path: PathBuf,
        /// Why.
        error: CaptureError,
    },
    /// A record of the capture cannot be read (frames before it were replayed).
    #[error("{}: frame {index}: {error}", path.display())]
    InputFrame {
        /// The capture.
        path: PathBuf,
        /// Index of the frame that could not be read.
        index: u64,
        /// Why.
        error: CaptureError,
    },
    /// An output file cannot be created or written.
    #[error("{}: {error}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// Why.
        error: CaptureError,
    },
    /// One frame cannot be written to an output pcap (frames before it were written).
    #[error("{}: frame {index}: {error}", path.display())]
    OutputFrame {
        /// The output file.
        path: PathBuf,
        /// Index of the input frame.
        index: u64,
        /// Why.
        error: CaptureError,
    },
}

impl ReplayError {
    /// True for a usage error (a path that cannot be opened or created), false for a failure of
    /// the run itself (a malformed capture, a failed write).
    pub fn is_usage(&self) -> bool {
        matches!(self, ReplayError::Path { .. })
    }
}

/// One line of the verdicts file.
#[derive(Serialize)]
struct VerdictLine {
    index: u64,
    verdict: &'static str,
    reason: Option<&'static str>,
    output: Option<String>,
}

/// An output file: a temporary file in the directory of `path`, renamed to `path` by `commit`
/// (and removed if dropped before).
fn stage(path: &Path) -> Result<NamedTempFile, ReplayError> {
    crate::staged::create(path).map_err(|error| ReplayError::Path {
        path: path.to_owned(),
        error,
    })
}

fn commit(file: NamedTempFile, path: &Path) -> Result<(), ReplayError> {
    file.persist(path)
        .map(drop)
        .map_err(|e| output_error(path, e.error))
}

/// An output pcap and its path, for error messages.
struct PcapOutput {
    path: PathBuf,
    writer: EthernetPcapWriter<BufWriter<NamedTempFile>>,
}

impl PcapOutput {
    fn create(
        path: Option<&PathBuf>,
        reader: &CaptureReader<std::fs::File>,
    ) -> Result<Option<Self>, ReplayError> {
        path.map(|path| {
            let file = stage(path)?;
            EthernetPcapWriter::new(BufWriter::new(file), reader.resolution())
                .map(|writer| PcapOutput {
                    path: path.clone(),
                    writer,
                })
                .map_err(|source| output_error(path, source))
        })
        .transpose()
    }

    fn write(
        &mut self,
        index: u64,
        meta: &FrameMeta,
        captured: usize,
        data: &[u8],
    ) -> Result<(), ReplayError> {
        // Bytes missing from the capture are still missing from the output.
        let missing = (meta.orig_len as usize).saturating_sub(captured);
        let orig_len = u32::try_from(data.len() + missing).unwrap_or(u32::MAX);
        self.writer
            .write(meta.timestamp, orig_len, data)
            .map_err(|error| ReplayError::OutputFrame {
                path: self.path.clone(),
                index,
                error,
            })
    }

    /// Completes the file, still under its temporary name.
    fn finish(self) -> Result<(NamedTempFile, PathBuf), ReplayError> {
        let writer = self
            .writer
            .finish()
            .map_err(|source| output_error(&self.path, source))?;
        let file = writer
            .into_inner()
            .map_err(|e| output_error(&self.path, e.into_error()))?;
        Ok((file, self.path))
    }
}

fn output_error(path: &Path, source: impl Into<CaptureError>) -> ReplayError {
    ReplayError::Output {
        path: path.to_owned(),
        error: source.into(),
    }
}

/// Where the verdict lines go.
enum Verdicts {
    Stdout(io::StdoutLock<'static>),
    File(BufWriter<NamedTempFile>),
}

impl Verdicts {
    fn create(path: &Path) -> Result<Self, ReplayError> {
        if path == Path::new("-") {
            return Ok(Verdicts::Stdout(io::stdout().lock()));
        }
        Ok(Verdicts::File(BufWriter::new(stage(path)?)))
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Verdicts::Stdout(out) => out,
            Verdicts::File(file) => file,
        }
    }

    /// Flushes the lines; a file stays under its temporary name.
    fn finish(self, path: &Path) -> Result<Option<NamedTempFile>, ReplayError> {
        match self {
            Verdicts::Stdout(mut out) => out.flush().map(|()| None),
            Verdicts::File(file) => file.into_inner().map(Some).map_err(|e| e.into_error()),
        }
        .map_err(|e| output_error(path, e))
    }
}

/// Replays every frame of the capture at `input` (classic pcap or pcapng) through one engine
/// configured by `config`, with its static flows, writing the results to `outputs`.
pub fn replay(
    config: &Config,
    input: &Path,
    outputs: &ReplayOutputs,
) -> Result<ReplaySummary, ReplayError> {
    let file = std::fs::File::open(input).map_err(|error| ReplayError::Path {
        path: input.to_owned(),
        error,
    })?;
    let mut reader = CaptureReader::new(file).map_err(|error| ReplayError::Input {
        path: input.to_owned(),
        error,
    })?;
    let mut verdicts = Verdicts::create(&outputs.verdicts)?;
    let mut accepted = PcapOutput::create(outputs.accepted.as_ref(), &reader)?;
    let mut forwarded = PcapOutput::create(outputs.forwarded.as_ref(), &reader)?;

    let mut engine = Engine::new(config.engine_config());
    let flows = config.flow_table();
    let mut summary = ReplaySummary::default();
    let mut buf = Vec::new();
    loop {
        let index = summary.frames;
        let meta = match reader.next_frame(&mut buf) {
            Ok(Some(meta)) => meta,
            Ok(None) => break,
            Err(error) => {
                return Err(ReplayError::InputFrame {
                    path: input.to_owned(),
                    index,
                    error,
                });
            }
        };
        summary.frames += 1;
        let captured = buf.len();
        if (meta.orig_len as usize) > captured {
            summary.short_captures += 1;
        }
        if meta.link_type != DataLink::ETHERNET {
            summary.non_ethernet += 1;
            summary
                .first_non_ethernet
                .get_or_insert((index, meta.link_type));
            continue;
        }

        let outcome = engine.process(&mut buf, &flows);
        summary.verdicts.count(outcome.verdict);
        let frame = match outcome.verdict {
            Verdict::Drop => None,
            _ => Some(outcome.output(&buf)),
        };
        let line = VerdictLine {
            index,
            verdict: outcome.verdict.name(),
            reason: outcome.reason.map(|c| c.name()),
            output: frame.map(hex::encode),
        };
        let out = verdicts.writer();
        serde_json::to_writer(&mut *out, &line)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| output_error(&outputs.verdicts, e))?;
        let out = match outcome.verdict {
            Verdict::Accept => accepted.as_mut(),
            Verdict::Forward => forwarded.as_mut(),
            Verdict::Pass | Verdict::Drop => None,
        };
        if let (Some(out), Some(frame)) = (out, frame) {
            out.write(index, &meta, captured, frame)?;
        }
    }

    // Every output complete first, then renamed into place.
    let mut done = Vec::new();
    if let Some(file) = verdicts.finish(&outputs.verdicts)? {
        done.push((file, outputs.verdicts.clone()));
    }
    for out in [accepted, forwarded].into_iter().flatten() {
        done.push(out.finish()?);
    }
    for (file, path) in done {
        commit(file, &path)?;
    }
    summary.counters = engine.counters().clone();
    Ok(summary)
}
