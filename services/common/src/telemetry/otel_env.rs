//! The standard `OTEL_*` variables, read from the environment map the process
//! was given (never from the process environment directly, so tests pass their own).
//!
//! Honoured: `OTEL_EXPORTER_OTLP_ENDPOINT` (when `otlp.endpoint` is not set: the shadowsync key
//! wins, being the more specific), `OTEL_SERVICE_NAME` (over the role's default name),
//! `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, percent-decoded) and `OTEL_TRACES_SAMPLER` with
//! `OTEL_TRACES_SAMPLER_ARG`. The default sampler is `parentbased_always_on`, so a caller's
//! sampling decision is followed by every service downstream.

use std::collections::HashMap;

use opentelemetry_sdk::trace::Sampler;

/// Which traces are recorded, as `OTEL_TRACES_SAMPLER` names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl SamplerChoice {
    /// The SDK sampler.
    pub fn sampler(self) -> Sampler {
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedTraceIdRatio(ratio) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
        }
    }
}

/// What the `OTEL_*` variables say, merged with the configured endpoint and default name.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    pub service_name: String,
    pub endpoint: Option<String>,
    pub resource_attributes: Vec<(String, String)>,
    pub sampler: SamplerChoice,
}

/// Why an `OTEL_*` variable was refused (start-up stops, naming it).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{variable}: {reason}")]
pub struct OtelEnvError {
    pub variable: &'static str,
    pub reason: String,
}

impl OtelSettings {
    /// Reads the variables from `env`; `configured_endpoint` is `otlp.endpoint`.
    ///
    /// Fails on an unknown sampler name or a ratio outside 0..=1 (the specification says to
    /// fall back silently; a typo that silently records everything, or nothing, is worse).
    pub fn from_env(
        default_service_name: &str,
        configured_endpoint: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Self, OtelEnvError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let service_name = get("OTEL_SERVICE_NAME")
            .unwrap_or(default_service_name)
            .to_string();
        let endpoint = configured_endpoint
            .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .map(str::to_string);
        let resource_attributes = get("OTEL_RESOURCE_ATTRIBUTES")
            .map(parse_resource_attributes)
            .unwrap_or_default();
        let ratio = || -> Result<f64, OtelEnvError> {
            let Some(arg) = get("OTEL_TRACES_SAMPLER_ARG") else {
                return Ok(1.0);
            };
            match arg.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(OtelEnvError {
                    variable: "OTEL_TRACES_SAMPLER_ARG",
                    reason: format!("expected a ratio from 0 to 1, found {arg:?}"),
                }),
            }
        };
        let sampler = match get("OTEL_TRACES_SAMPLER") {
            None | Some("parentbased_always_on") => SamplerChoice::ParentBasedAlwaysOn,
            Some("parentbased_always_off") => SamplerChoice::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => SamplerChoice::ParentBasedTraceIdRatio(ratio()?),
            Some("always_on") => SamplerChoice::AlwaysOn,
            Some("always_off") => SamplerChoice::AlwaysOff,
            Some("traceidratio") => SamplerChoice::TraceIdRatio(ratio()?),
            Some(other) => {
                return Err(OtelEnvError {
                    variable: "OTEL_TRACES_SAMPLER",
                    reason: format!(
                        "unsupported sampler {other:?} (expected always_on, always_off, \
                         traceidratio or their parentbased_ forms)"
                    ),
                });
            }
        };
        Ok(Self {
            service_name,
            endpoint,
            resource_attributes,
            sampler,
        })
    }
}

/// `key1=value1,key2=value2` with percent-encoded values; malformed pairs are skipped (the
/// specification's rule: the rest of the list still applies).
fn parse_resource_attributes(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            Some((key.to_string(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = value.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_parent_based_and_the_role_name() {
        let settings = OtelSettings::from_env("shadowsync-task", None, &env(&[])).expect("ok");
        assert_eq!(settings.service_name, "shadowsync-task");
        assert_eq!(settings.endpoint, None);
        assert!(settings.resource_attributes.is_empty());
        assert_eq!(settings.sampler, SamplerChoice::ParentBasedAlwaysOn);
    }

    #[test]
    fn standard_variables_are_honoured() {
        let settings = OtelSettings::from_env(
            "shadowsync-task",
            None,
            &env(&[
                ("OTEL_SERVICE_NAME", "orders-shadowsync"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=prod,team=db%20platform,broken,=x",
                ),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ]),
        )
        .expect("ok");
        assert_eq!(settings.service_name, "orders-shadowsync");
        assert_eq!(settings.endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(
            settings.resource_attributes,
            [
                ("deployment.environment".to_string(), "prod".to_string()),
                ("team".to_string(), "db platform".to_string())
            ]
        );
        assert_eq!(
            settings.sampler,
            SamplerChoice::ParentBasedTraceIdRatio(0.25)
        );
    }

    #[test]
    fn the_configured_endpoint_wins_over_the_variable() {
        let settings = OtelSettings::from_env(
            "s",
            Some("http://configured:4317"),
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")]),
        )
        .expect("ok");
        assert_eq!(settings.endpoint.as_deref(), Some("http://configured:4317"));
    }

    #[test]
    fn bad_samplers_are_refused_naming_the_variable() {
        let error =
            OtelSettings::from_env("s", None, &env(&[("OTEL_TRACES_SAMPLER", "sometimes")]))
                .expect_err("unknown sampler");
        assert_eq!(error.variable, "OTEL_TRACES_SAMPLER");
        let error = OtelSettings::from_env(
            "s",
            None,
            &env(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ]),
        )
        .expect_err("ratio above 1");
        assert_eq!(error.variable, "OTEL_TRACES_SAMPLER_ARG");
    }
}
