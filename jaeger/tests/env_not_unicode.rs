//! `builder_from_env` with a variable that is not valid UTF-8, in the real
//! process environment (its own test binary, with one test: no other test
//! reads this environment meanwhile).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(unix)]
#[test]
fn a_non_utf8_variable_is_an_error_naming_it() {
    use std::os::unix::ffi::OsStringExt;
    let bad = std::ffi::OsString::from_vec(vec![b'x', 0xff]);
    std::env::set_var("JAEGER_SERVICE_NAME", "svc");
    std::env::set_var("JAEGER_SAMPLER_TYPE", &bad);
    match opentracing_jaeger::builder_from_env() {
        Err(opentracing_jaeger::ConfigError::NotUnicode { var }) => {
            assert_eq!(var, "JAEGER_SAMPLER_TYPE");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a non-UTF-8 JAEGER_SAMPLER_TYPE was taken as unset"),
    }
    std::env::remove_var("JAEGER_SAMPLER_TYPE");
    // A non-UTF-8 variable the configuration does not read is no error.
    std::env::set_var("OPENTRACING_JAEGER_TEST_UNRELATED", &bad);
    assert!(opentracing_jaeger::builder_from_env().is_ok());
}
