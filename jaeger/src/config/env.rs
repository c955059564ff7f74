//! `JAEGER_*` and `OTEL_*` environment variables (the table is in the
//! crate docs).

use std::time::Duration;

use opentracing_api::TagValue;

use super::{
    ConfigError, Exporter, JaegerTracerBuilder, PropagationFormat, DEFAULT_SAMPLING_ENDPOINT,
};
use crate::sampler::{ConstSampler, ProbabilisticSampler, RateLimitingSampler};
use crate::tracer::JaegerTracer;
use crate::transport::CollectorAuth;

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn get(env: Lookup<'_>, var: &str) -> Option<String> {
    env(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidVar {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_bool(env: Lookup<'_>, var: &'static str) -> Result<Option<bool>, ConfigError> {
    get(env, var)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(invalid(var, &v, "expected true or false")),
        })
        .transpose()
}

fn parse_f64(env: Lookup<'_>, var: &'static str) -> Result<Option<f64>, ConfigError> {
    get(env, var)
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| invalid(var, &v, "expected a number"))
        })
        .transpose()
}

fn parse_usize(env: Lookup<'_>, var: &'static str) -> Result<Option<usize>, ConfigError> {
    get(env, var)
        .map(|v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(var, &v, "expected a positive integer"))
        })
        .transpose()
}

/// Go-style durations (`1m`, `30s`, `1m30s`, `500ms`, `2h`), or a bare
/// number of milliseconds as OpenTelemetry's variables use.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(Duration::from_millis(ms));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(value * scale).ok()?)?;
        rest = &rest[unit_end..];
    }
    Some(total)
}

fn parse_dur(env: Lookup<'_>, var: &'static str) -> Result<Option<Duration>, ConfigError> {
    get(env, var)
        .map(|v| {
            parse_duration(&v)
                .ok_or_else(|| invalid(var, &v, "expected a duration such as 1m, 30s or 500ms"))
        })
        .transpose()
}

/// `k=v,k2=v2` lists; values may be percent-encoded (OpenTelemetry) or
/// `${VAR:default}` (Jaeger).
fn parse_pairs(
    env: Lookup<'_>,
    var: &'static str,
    value: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(invalid(var, value, format!("{pair:?} is not key=value")));
        };
        let v = v.trim();
        let v = if let Some(inner) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            let (name, default) = inner.split_once(':').unwrap_or((inner, ""));
            get(env, name).unwrap_or_else(|| default.to_owned())
        } else {
            percent_decode(v).ok_or_else(|| invalid(var, value, "bad percent-encoding"))?
        };
        if k.trim().is_empty() {
            return Err(invalid(var, value, "empty key"));
        }
        out.push((k.trim().to_owned(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_propagation(
    var: &'static str,
    value: &str,
) -> Result<Vec<PropagationFormat>, ConfigError> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let formats: &[PropagationFormat] = match name.to_ascii_lowercase().as_str() {
            "jaeger" => &[PropagationFormat::Jaeger],
            "tracecontext" => &[PropagationFormat::TraceContext],
            "w3c" => &[PropagationFormat::TraceContext, PropagationFormat::Baggage],
            "baggage" => &[PropagationFormat::Baggage],
            "b3" => &[PropagationFormat::B3Single],
            "b3multi" => &[PropagationFormat::B3Multi],
            "none" => &[],
            _ => {
                return Err(invalid(
                    var,
                    value,
                    format!("unknown propagation format {name:?}"),
                ))
            }
        };
        for f in formats {
            if !out.contains(f) {
                out.push(*f);
            }
        }
    }
    Ok(out)
}

/// A builder configured from the process environment; adjust it further in
/// code, then call `build`.
///
/// A variable the configuration reads whose value is not valid UTF-8 is an
/// error naming it ([`ConfigError::NotUnicode`]), never taken as unset.
/// Variables the configuration does not read are not looked at.
pub fn builder_from_env() -> Result<JaegerTracerBuilder, ConfigError> {
    builder_from_os_vars(&|name| std::env::var_os(name))
}

/// [`builder_from_vars`] over raw (`OsString`) values: the first variable
/// read whose value is not UTF-8 is the error (it may be why another
/// variable looked wrong, such as a missing service name).
pub(crate) fn builder_from_os_vars(
    lookup: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let not_unicode = std::cell::RefCell::new(None);
    let result = builder_from_vars(&|name| {
        let value = lookup(name)?.into_string().ok();
        if value.is_none() {
            not_unicode
                .borrow_mut()
                .get_or_insert_with(|| name.to_owned());
        }
        value
    });
    match not_unicode.into_inner() {
        Some(var) => Err(ConfigError::NotUnicode { var }),
        None => result,
    }
}

/// A builder configured from the variables `lookup` returns (for tests and
/// for configuration that is not in the process environment). The
/// variables are those of [`JaegerTracer::from_env`].
pub fn builder_from_vars(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let env = lookup;
    let b = service_and_tags(env)?;
    let b = exporter(env, b)?;
    let b = sampler(env, b)?;
    let b = reporter(env, b)?;
    propagation(env, b)
}

/// The service name and the process tags.
fn service_and_tags(env: Lookup<'_>) -> Result<JaegerTracerBuilder, ConfigError> {
    let mut resource = match get(env, "OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => parse_pairs(env, "OTEL_RESOURCE_ATTRIBUTES", &v)?,
        None => Vec::new(),
    };
    let resource_name = resource
        .iter()
        .position(|(k, _)| k == "service.name")
        .map(|i| resource.remove(i).1);
    let service = get(env, "JAEGER_SERVICE_NAME")
        .or_else(|| get(env, "OTEL_SERVICE_NAME"))
        .or(resource_name)
        .ok_or_else(|| {
            ConfigError::Invalid(
                "no service name: set JAEGER_SERVICE_NAME or OTEL_SERVICE_NAME".into(),
            )
        })?;
    let mut b = JaegerTracer::builder(service);
    for (k, v) in resource {
        b = b.tag(k, TagValue::from(v));
    }
    if let Some(v) = get(env, "JAEGER_TAGS") {
        for (k, v) in parse_pairs(env, "JAEGER_TAGS", &v)? {
            b = b.tag(k, TagValue::from(v));
        }
    }
    Ok(b)
}

/// The exporter: a Jaeger collector, an OTLP endpoint, or a Jaeger agent,
/// in that order of precedence.
fn exporter(
    env: Lookup<'_>,
    mut b: JaegerTracerBuilder,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let user = get(env, "JAEGER_USER");
    let password = get(env, "JAEGER_PASSWORD");
    let token = get(env, "JAEGER_AUTH_TOKEN");
    let grpc = otlp_is_grpc(env)?;
    let otlp_headers = match get(env, "OTEL_EXPORTER_OTLP_HEADERS") {
        Some(v) => parse_pairs(env, "OTEL_EXPORTER_OTLP_HEADERS", &v)?,
        None => Vec::new(),
    };
    let check_url = |var: &'static str, v: &str| -> Result<(), ConfigError> {
        crate::transport::check_http_url(v)
            .map(|_| ())
            .map_err(|why| invalid(var, v, why))
    };
    if let Some(url) = get(env, "JAEGER_ENDPOINT") {
        check_url("JAEGER_ENDPOINT", &url)?;
        let auth = collector_auth(user, password, token)?;
        b = b.exporter(Exporter::HttpCollector { url, auth });
    } else if let Some(url) = get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?;
        b = b.exporter(if grpc {
            Exporter::OtlpGrpc {
                endpoint: url,
                headers: otlp_headers,
            }
        } else {
            Exporter::OtlpHttp {
                url,
                headers: otlp_headers,
            }
        });
    } else if let Some(base) = get(env, "OTEL_EXPORTER_OTLP_ENDPOINT") {
        check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &base)?;
        b = b.exporter(if grpc {
            Exporter::OtlpGrpc {
                endpoint: base,
                headers: otlp_headers,
            }
        } else {
            Exporter::OtlpHttp {
                url: format!("{}/v1/traces", base.trim_end_matches('/')),
                headers: otlp_headers,
            }
        });
    } else if get(env, "JAEGER_AGENT_HOST").is_some() || get(env, "JAEGER_AGENT_PORT").is_some() {
        let host = get(env, "JAEGER_AGENT_HOST").unwrap_or_else(|| "localhost".to_owned());
        let port = match get(env, "JAEGER_AGENT_PORT") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| invalid("JAEGER_AGENT_PORT", &p, "expected a port number"))?,
            None => 6831,
        };
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        b = b.exporter(Exporter::UdpAgent { addr });
    } else if grpc {
        b = b.exporter(Exporter::OtlpGrpc {
            endpoint: "http://localhost:4317".into(),
            headers: otlp_headers,
        });
    } else if !otlp_headers.is_empty() {
        b = b.exporter(Exporter::OtlpHttp {
            url: super::DEFAULT_OTLP_HTTP_URL.into(),
            headers: otlp_headers,
        });
    }
    Ok(b)
}

/// Whether OTLP goes over gRPC (`OTEL_EXPORTER_OTLP_*PROTOCOL=grpc`).
fn otlp_is_grpc(env: Lookup<'_>) -> Result<bool, ConfigError> {
    let otlp_protocol = get(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", v))
        .or_else(|| {
            get(env, "OTEL_EXPORTER_OTLP_PROTOCOL").map(|v| ("OTEL_EXPORTER_OTLP_PROTOCOL", v))
        });
    match &otlp_protocol {
        None => Ok(false),
        Some((_, v)) if v == "http/protobuf" => Ok(false),
        Some((_, v)) if v == "grpc" => Ok(true),
        Some((var, v)) => Err(invalid(
            var,
            v,
            "supported protocols are http/protobuf and grpc",
        )),
    }
}

/// The Jaeger collector's credentials: basic (user and password), or a
/// bearer token.
fn collector_auth(
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> Result<CollectorAuth, ConfigError> {
    Ok(match (user, password, token) {
        (Some(u), Some(p), _) => CollectorAuth::Basic {
            user: u,
            password: p,
        },
        (Some(_), None, _) => {
            return Err(invalid(
                "JAEGER_USER",
                "***",
                "JAEGER_PASSWORD must be set too",
            ))
        }
        (None, Some(_), _) => {
            return Err(invalid(
                "JAEGER_PASSWORD",
                "***",
                "JAEGER_USER must be set too",
            ))
        }
        (None, None, Some(t)) => CollectorAuth::Bearer(t),
        (None, None, None) => CollectorAuth::None,
    })
}

/// A sampling rate between 0 and 1 from `var` (`default` when unset).
fn rate(var: &'static str, v: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    let r = v.unwrap_or(default);
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(invalid(
            var,
            &r.to_string(),
            "expected a sampling rate between 0 and 1",
        ))
    }
}

/// The sampler: `JAEGER_SAMPLER_*`, else `OTEL_TRACES_SAMPLER*`;
/// `JAEGER_DISABLED` overrides both.
fn sampler(
    env: Lookup<'_>,
    mut b: JaegerTracerBuilder,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let param = parse_f64(env, "JAEGER_SAMPLER_PARAM")?;
    let sampling_endpoint = get(env, "JAEGER_SAMPLING_ENDPOINT")
        .or_else(|| {
            get(env, "JAEGER_AGENT_HOST").map(|h| {
                if h.contains(':') && !h.starts_with('[') {
                    format!("http://[{h}]:5778/sampling")
                } else {
                    format!("http://{h}:5778/sampling")
                }
            })
        })
        .unwrap_or_else(|| DEFAULT_SAMPLING_ENDPOINT.to_owned());
    let refresh =
        parse_dur(env, "JAEGER_SAMPLER_REFRESH_INTERVAL")?.unwrap_or(Duration::from_secs(60));
    if refresh < Duration::from_secs(1) {
        return Err(invalid(
            "JAEGER_SAMPLER_REFRESH_INTERVAL",
            &format!("{refresh:?}"),
            "at least 1s",
        ));
    }
    if let Some(t) = get(env, "JAEGER_SAMPLER_TYPE") {
        b = jaeger_sampler(b, &t, param, sampling_endpoint, refresh)?;
    } else if let Some(s) = get(env, "OTEL_TRACES_SAMPLER") {
        b = otel_sampler(env, b, &s, sampling_endpoint, refresh)?;
    }
    if parse_bool(env, "JAEGER_DISABLED")? == Some(true) {
        b = b.sampler(ConstSampler(false)).exporter(Exporter::None);
        b.remote = None;
    }
    Ok(b)
}

/// `JAEGER_SAMPLER_TYPE` with `JAEGER_SAMPLER_PARAM`.
fn jaeger_sampler(
    b: JaegerTracerBuilder,
    t: &str,
    param: Option<f64>,
    sampling_endpoint: String,
    refresh: Duration,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let b = match t {
        "const" => match param {
            None => b.sampler(ConstSampler(true)),
            Some(p) if p.to_bits() == 0.0_f64.to_bits() => b.sampler(ConstSampler(false)),
            Some(p) if p.to_bits() == 1.0_f64.to_bits() => b.sampler(ConstSampler(true)),
            Some(p) => {
                return Err(invalid(
                    "JAEGER_SAMPLER_PARAM",
                    &p.to_string(),
                    "const takes 0 or 1",
                ))
            }
        },
        "probabilistic" => b.sampler(ProbabilisticSampler::new(rate(
            "JAEGER_SAMPLER_PARAM",
            param,
            0.001,
        )?)),
        "ratelimiting" => match param {
            Some(p) if p >= 0.0 => b.sampler(RateLimitingSampler::new(p)),
            Some(p) => {
                return Err(invalid(
                    "JAEGER_SAMPLER_PARAM",
                    &p.to_string(),
                    "expected traces per second",
                ))
            }
            None => b.sampler(RateLimitingSampler::new(1.0)),
        },
        "remote" => {
            let initial = ProbabilisticSampler::new(rate("JAEGER_SAMPLER_PARAM", param, 0.001)?);
            b.remote_sampler(sampling_endpoint, refresh, initial)
        }
        _ => {
            return Err(invalid(
                "JAEGER_SAMPLER_TYPE",
                t,
                "expected const, probabilistic, ratelimiting or remote",
            ))
        }
    };
    Ok(b)
}

/// `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG`.
fn otel_sampler(
    env: Lookup<'_>,
    b: JaegerTracerBuilder,
    s: &str,
    sampling_endpoint: String,
    refresh: Duration,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let (parent_based, name) = match s.strip_prefix("parentbased_") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let sampler: Box<dyn FnOnce(JaegerTracerBuilder) -> JaegerTracerBuilder> = match name {
        "always_on" => Box::new(|b| b.sampler(ConstSampler(true))),
        "always_off" => Box::new(|b| b.sampler(ConstSampler(false))),
        "traceidratio" => {
            let arg = parse_f64(env, "OTEL_TRACES_SAMPLER_ARG")?;
            let r = rate("OTEL_TRACES_SAMPLER_ARG", arg, 1.0)?;
            Box::new(move |b| b.sampler(ProbabilisticSampler::new(r)))
        }
        "jaeger_remote" => {
            // `endpoint=URL,pollingIntervalMs=N,initialSamplingRate=R`,
            // as OpenTelemetry specifies it.
            let mut ep = sampling_endpoint;
            let mut poll = refresh;
            let mut initial_rate = 0.001;
            if let Some(arg) = get(env, "OTEL_TRACES_SAMPLER_ARG") {
                for (k, v) in parse_pairs(env, "OTEL_TRACES_SAMPLER_ARG", &arg)? {
                    let bad =
                        |why: &str| invalid("OTEL_TRACES_SAMPLER_ARG", &arg, format!("{k}: {why}"));
                    match k.as_str() {
                        "endpoint" => ep = v,
                        "pollingIntervalMs" => {
                            let ms: u64 = v.parse().map_err(|_| bad("expected milliseconds"))?;
                            poll = Duration::from_millis(ms.max(1000));
                        }
                        "initialSamplingRate" => {
                            initial_rate = v
                                .parse::<f64>()
                                .ok()
                                .filter(|r| (0.0..=1.0).contains(r))
                                .ok_or_else(|| bad("expected a rate between 0 and 1"))?;
                        }
                        _ => return Err(bad("unknown key")),
                    }
                }
            }
            let initial = ProbabilisticSampler::new(initial_rate);
            Box::new(move |b| b.remote_sampler(ep, poll, initial))
        }
        _ => return Err(invalid("OTEL_TRACES_SAMPLER", s, "unsupported sampler")),
    };
    let mut b = sampler(b);
    if !parent_based {
        b.policy.trust_sampling = false;
    }
    Ok(b)
}

/// The reporter's queue, flush interval and span logging, and the trace id
/// width.
fn reporter(
    env: Lookup<'_>,
    mut b: JaegerTracerBuilder,
) -> Result<JaegerTracerBuilder, ConfigError> {
    if let Some(n) = parse_usize(env, "JAEGER_REPORTER_MAX_QUEUE_SIZE")? {
        if n > crate::reporter::MAX_QUEUE_SIZE {
            return Err(invalid(
                "JAEGER_REPORTER_MAX_QUEUE_SIZE",
                &n.to_string(),
                format!(
                    "at most {} (the queue is allocated up front)",
                    crate::reporter::MAX_QUEUE_SIZE
                ),
            ));
        }
        b = b.queue_size(n);
    }
    if let Some(d) = parse_dur(env, "JAEGER_REPORTER_FLUSH_INTERVAL")? {
        if d.is_zero() {
            return Err(invalid(
                "JAEGER_REPORTER_FLUSH_INTERVAL",
                "0",
                "must be positive",
            ));
        }
        b = b.flush_interval(d);
    }
    if let Some(on) = parse_bool(env, "JAEGER_REPORTER_LOG_SPANS")? {
        b = b.log_spans(on);
    }
    if let Some(on) = parse_bool(env, "JAEGER_TRACEID_128BIT")? {
        b = b.trace_id_128bit(on);
    }
    Ok(b)
}

/// The propagation formats.
fn propagation(
    env: Lookup<'_>,
    mut b: JaegerTracerBuilder,
) -> Result<JaegerTracerBuilder, ConfigError> {
    let propagation = get(env, "JAEGER_PROPAGATION")
        .map(|v| parse_propagation("JAEGER_PROPAGATION", &v))
        .or_else(|| get(env, "OTEL_PROPAGATORS").map(|v| parse_propagation("OTEL_PROPAGATORS", &v)))
        .transpose()?;
    if let Some(formats) = propagation {
        b = b.propagation(&formats);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    /// Builds from these variables, `None` values being non-UTF-8.
    #[cfg(unix)]
    fn from_os(
        vars: &[(&str, Option<&str>)],
    ) -> Result<super::JaegerTracerBuilder, super::ConfigError> {
        use std::os::unix::ffi::OsStringExt;
        let vars: Vec<(String, std::ffi::OsString)> = vars
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Some(v) => (*v).into(),
                    None => std::ffi::OsString::from_vec(vec![b's', 0xff, 0xfe]),
                };
                ((*k).to_owned(), v)
            })
            .collect();
        super::builder_from_os_vars(&|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[cfg(unix)]
    fn not_unicode(vars: &[(&str, Option<&str>)]) -> String {
        match from_os(vars) {
            Err(super::ConfigError::NotUnicode { var }) => var,
            Err(e) => panic!("{vars:?}: {e}"),
            Ok(_) => panic!("{vars:?} was accepted"),
        }
    }

    #[test]
    #[cfg(unix)]
    fn non_utf8_variables_are_errors_naming_them_not_unset() {
        let svc = ("JAEGER_SERVICE_NAME", Some("svc"));
        assert_eq!(
            not_unicode(&[("JAEGER_SERVICE_NAME", None)]),
            "JAEGER_SERVICE_NAME"
        );
        // Unset, it would fall back to OTEL_SERVICE_NAME.
        assert_eq!(
            not_unicode(&[
                ("JAEGER_SERVICE_NAME", None),
                ("OTEL_SERVICE_NAME", Some("b"))
            ]),
            "JAEGER_SERVICE_NAME"
        );
        // Unset, it would quietly choose another sampler.
        assert_eq!(
            not_unicode(&[svc, ("JAEGER_SAMPLER_TYPE", None)]),
            "JAEGER_SAMPLER_TYPE"
        );
        assert_eq!(
            not_unicode(&[
                svc,
                ("JAEGER_ENDPOINT", Some("http://c:14268/api/traces")),
                ("JAEGER_PASSWORD", None),
                ("JAEGER_USER", Some("u"))
            ]),
            "JAEGER_PASSWORD"
        );
        // A variable `${VAR}` in a value refers to is read too.
        assert_eq!(
            not_unicode(&[
                svc,
                ("JAEGER_TAGS", Some("a=${MY_TAG:x}")),
                ("MY_TAG", None)
            ]),
            "MY_TAG"
        );
        // The value is not shown (it may be a secret).
        let e = from_os(&[
            svc,
            ("JAEGER_AUTH_TOKEN", None),
            ("JAEGER_ENDPOINT", Some("http://c/api/traces")),
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("JAEGER_AUTH_TOKEN") && e.contains("UTF-8"),
            "{e}"
        );
        assert!(!e.contains('\u{fffd}'), "{e}");
        // Variables the configuration does not read are not looked at.
        assert!(from_os(&[svc, ("SOMETHING_ELSE", None)]).is_ok());
        assert!(from_os(&[svc, ("MY_TAG", None)]).is_ok());
    }

    #[test]
    fn go_durations_and_milliseconds() {
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2000"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10x"), None);
    }
}
