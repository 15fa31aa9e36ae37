//! Exit statuses: what a script may conclude from `$?` without reading the message.
//!
//! The numbers are a contract: scripts branch on them, so a status keeps its meaning forever
//! and new ones only ever take new numbers. `shadowctl guard` keeps its own documented
//! 0/1/2 (accepted / refused / bad input), which agrees with the first three below.

use std::process::ExitCode;

/// Why `shadowctl` exited, as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did what was asked.
    Success = 0,
    /// Any other failure: a server's internal error, an output that cannot be written, a
    /// connection test the target database failed.
    Failure = 1,
    /// The command line or a value in it is wrong (the server's INVALID_ARGUMENT too).
    Usage = 2,
    /// What the command names does not exist (NOT_FOUND).
    NotFound = 3,
    /// No identity, or one that may not do this (UNAUTHENTICATED, PERMISSION_DENIED).
    Denied = 4,
    /// The server or a service behind it cannot be reached or is not serving: retry later
    /// (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED; `health` with a service down).
    Unavailable = 5,
    /// The request does not fit the current state: the task already moved on, the name is
    /// taken (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED).
    Conflict = 6,
    /// `--timeout` elapsed before what was waited for finished.
    Timeout = 7,
    /// What was waited for ended unsuccessfully: the task failed, was rejected, cancelled or
    /// expired (`task wait`, `task logs --follow`), or the analysis failed (`--wait`).
    Unsuccessful = 8,
}

impl Exit {
    /// The gRPC code's class.
    pub fn of_code(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::Ok => Self::Success,
            Code::InvalidArgument | Code::OutOfRange => Self::Usage,
            Code::NotFound => Self::NotFound,
            Code::Unauthenticated | Code::PermissionDenied => Self::Denied,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                Self::Unavailable
            }
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => Self::Conflict,
            Code::Cancelled
            | Code::Unknown
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss => Self::Failure,
        }
    }

    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        exit.code()
    }
}

/// `shadowctl help exit-codes`.
pub const HELP: &str = "\
shadowctl exits with one of these statuses; scripts may branch on them:

  0  success
  1  any other failure (a server's internal error, an unwritable output, a failed
     `connection test`)
  2  usage: a wrong flag, argument or value (also the server's INVALID_ARGUMENT)
  3  not found: the task, analysis, connection, template or table named does not exist
  4  denied: no token, a token the server refuses, or a permission you do not have
  5  unavailable, retry later: the server cannot be reached, a service behind it is down
     or not SERVING (`health`), a deadline passed
  6  conflict: the request does not fit the current state (the task already moved on,
     the name is taken)
  7  timeout: `--timeout` elapsed before what was waited for finished
  8  unsuccessful: what was waited for ended badly (`task wait` and `task logs --follow`:
     EXECUTION_FAILED, REJECTED, CANCELLED or an *_EXPIRED status; `--wait`: the analysis
     FAILED)

`shadowctl guard` keeps its own: 0 every statement accepted, 1 at least one refused,
2 bad input.

Example:
  shadowctl task wait 42 --timeout 30m
  case $? in
    0) echo synced ;;
    5|7) echo 'try again later' ;;
    *) echo 'look at: shadowctl task logs 42 --alert' ;;
  esac";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_has_a_class_and_ok_alone_is_success() {
        for number in 0..=16 {
            let code = tonic::Code::from_i32(number);
            let exit = Exit::of_code(code);
            assert_eq!(exit == Exit::Success, code == tonic::Code::Ok, "{code:?}");
        }
        assert_eq!(Exit::of_code(tonic::Code::NotFound), Exit::NotFound);
        assert_eq!(
            Exit::of_code(tonic::Code::PermissionDenied),
            Exit::of_code(tonic::Code::Unauthenticated)
        );
        assert_eq!(Exit::of_code(tonic::Code::Unavailable), Exit::Unavailable);
        assert_eq!(
            Exit::of_code(tonic::Code::FailedPrecondition),
            Exit::Conflict
        );
    }

    #[test]
    fn the_help_lists_every_status_with_its_number() {
        for exit in [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::NotFound,
            Exit::Denied,
            Exit::Unavailable,
            Exit::Conflict,
            Exit::Timeout,
            Exit::Unsuccessful,
        ] {
            let number = exit as u8;
            assert!(
                HELP.lines()
                    .any(|line| line.starts_with(&format!("  {number}  "))),
                "{exit:?} is not documented"
            );
        }
    }
}
