//! Bearer tokens: verifying arbitrary input never panics and never succeeds without the
//! key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_gateway::auth::Credentials;
use tollgate_gateway::auth::jwt::{CompiledJwt, JwksRegistry};

fn policy() -> &'static CompiledJwt {
    static POLICY: OnceLock<CompiledJwt> = OnceLock::new();
    POLICY.get_or_init(|| {
        let j = yaml_serde::from_str("{ keys: [{ secret: fuzz-secret-key-0001, alg: HS256 }, { jwk: { kty: OKP, crv: Ed25519, x: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo } }] }")
            .expect("policy parses");
        CompiledJwt::compile(&j, None, &JwksRegistry::default()).expect("policy compiles")
    })
}

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
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let credentials = Credentials::default();
    let verified = runtime().block_on(policy().verify(token, &credentials));
    assert!(verified.is_err(), "a token forged from fuzz input verified");
});
