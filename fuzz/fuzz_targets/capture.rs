#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chance_fuzz::check_capture(data));
