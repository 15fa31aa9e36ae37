//! A target connection's driver options, parsed and validated in one place: the task service
//! checks them when a connection is created, updated or tested, and the analysis service and the
//! executors read them with the same parser, so every component connects the same way. An
//! unknown option or an invalid value is refused naming the option, never replaced by a default
//! (an unknown TLS mode read as PREFERRED would connect with weaker TLS than was asked).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// The options a connection may carry.
pub const KNOWN_OPTIONS: &[&str] = &[SSL_MODE, CONNECT_TIMEOUT];
/// The TLS mode: DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY (any case).
pub const SSL_MODE: &str = "ssl-mode";
/// How long to wait for a target that does not answer: `10s`, `500ms`, or seconds.
pub const CONNECT_TIMEOUT: &str = "connect-timeout";
/// The longest `connect-timeout` accepted.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// An option refused: `option` is its name, `reason` what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {reason}")]
pub struct InvalidOption {
    pub option: String,
    pub reason: String,
}

impl InvalidOption {
    fn new(option: &str, reason: impl Into<String>) -> Self {
        Self {
            option: option.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The TLS mode of a target connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, InvalidOption> {
        match value.to_ascii_uppercase().as_str() {
            "DISABLED" => Ok(Self::Disabled),
            "PREFERRED" => Ok(Self::Preferred),
            "REQUIRED" => Ok(Self::Required),
            "VERIFY_CA" => Ok(Self::VerifyCa),
            "VERIFY_IDENTITY" => Ok(Self::VerifyIdentity),
            _ => Err(InvalidOption::new(
                SSL_MODE,
                "one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY",
            )),
        }
    }

    fn driver(self) -> MySqlSslMode {
        match self {
            Self::Disabled => MySqlSslMode::Disabled,
            Self::Preferred => MySqlSslMode::Preferred,
            Self::Required => MySqlSslMode::Required,
            Self::VerifyCa => MySqlSslMode::VerifyCa,
            Self::VerifyIdentity => MySqlSslMode::VerifyIdentity,
        }
    }
}

/// A connection's options, parsed. Unset options keep the driver's (or the caller's) default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetOptions {
    pub ssl_mode: Option<SslMode>,
    pub connect_timeout: Option<Duration>,
}

impl TargetOptions {
    /// Parses `options` (name → value). Fails on the first unknown name or invalid value.
    pub fn parse<'a>(
        options: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, InvalidOption> {
        let mut parsed = Self::default();
        for (name, value) in options {
            match name.as_str() {
                SSL_MODE => parsed.ssl_mode = Some(SslMode::parse(value)?),
                CONNECT_TIMEOUT => parsed.connect_timeout = Some(connect_timeout(value)?),
                other => {
                    return Err(InvalidOption::new(
                        other,
                        format!("unknown option; known: {}", KNOWN_OPTIONS.join(", ")),
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// Validates `options` and returns them ordered, as stored.
    pub fn validated<'a>(
        options: impl IntoIterator<Item = (&'a String, &'a String)> + Clone,
    ) -> Result<BTreeMap<String, String>, InvalidOption> {
        Self::parse(options.clone())?;
        Ok(options
            .into_iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect())
    }

    /// `connect` with the TLS mode applied.
    pub fn apply(&self, connect: MySqlConnectOptions) -> MySqlConnectOptions {
        match self.ssl_mode {
            Some(mode) => connect.ssl_mode(mode.driver()),
            None => connect,
        }
    }

    /// The connect timeout, or `default` when the connection sets none.
    pub fn connect_timeout_or(&self, default: Duration) -> Duration {
        self.connect_timeout.unwrap_or(default)
    }
}

/// `10s`, `500ms` or a number of seconds; more than zero, at most [`MAX_CONNECT_TIMEOUT`].
fn connect_timeout(value: &str) -> Result<Duration, InvalidOption> {
    let invalid = || {
        InvalidOption::new(
            CONNECT_TIMEOUT,
            "a duration such as 10s or 500ms, more than zero and at most 300s",
        )
    };
    let value = value.trim();
    let parsed = match value.strip_suffix("ms") {
        Some(ms) => ms.trim().parse().map(Duration::from_millis),
        None => value
            .strip_suffix('s')
            .unwrap_or(value)
            .trim()
            .parse()
            .map(Duration::from_secs),
    }
    .map_err(|_| invalid())?;
    if parsed.is_zero() || parsed > MAX_CONNECT_TIMEOUT {
        return Err(invalid());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<TargetOptions, InvalidOption> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TargetOptions::parse(&map)
    }

    #[test]
    fn valid_options_are_read() {
        let options = parse(&[
            ("ssl-mode", "verify_identity"),
            ("connect-timeout", "500ms"),
        ])
        .expect("valid");
        assert_eq!(options.ssl_mode, Some(SslMode::VerifyIdentity));
        assert_eq!(options.connect_timeout, Some(Duration::from_millis(500)));
        assert_eq!(
            parse(&[("connect-timeout", "7")])
                .expect("seconds")
                .connect_timeout,
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse(&[]).expect("none"), TargetOptions::default());
    }

    #[test]
    fn unknown_or_invalid_options_are_refused_naming_the_option() {
        for (pairs, option) in [
            (vec![("ssl-mode", "sometimes")], "ssl-mode"),
            (vec![("ssl-mode", "")], "ssl-mode"),
            (vec![("connect-timeout", "soon")], "connect-timeout"),
            (vec![("connect-timeout", "0s")], "connect-timeout"),
            (vec![("connect-timeout", "1h")], "connect-timeout"),
            (vec![("connect-timeout", "301s")], "connect-timeout"),
            (vec![("connect-timeout", "10ss")], "connect-timeout"),
            (vec![("sslmode", "REQUIRED")], "sslmode"),
        ] {
            let error = parse(&pairs).expect_err("refused");
            assert_eq!(error.option, option, "{pairs:?}: {error}");
        }
    }
}
