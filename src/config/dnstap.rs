//! `[dnstap]`: query logging in dnstap format (<https://dnstap.info>), to
//! a Frame Streams unix socket or a file. Off without the table; every
//! key needs a restart to change.

use std::path::PathBuf;

use toml::Spanned;

use super::{Validator, file};

/// Where dnstap messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnstapOutput {
    /// A Frame Streams reader listening on this unix socket
    /// (bidirectional: READY, ACCEPT, START).
    Socket(PathBuf),
    /// A Frame Streams file, replaced at start (START ... STOP).
    File(PathBuf),
}

/// `[dnstap]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnstapConfig {
    /// Where messages go.
    pub output: DnstapOutput,
    /// The `identity` of every message (default: the host name).
    pub identity: String,
    /// Log AUTH_QUERY messages.
    pub queries: bool,
    /// Log AUTH_RESPONSE messages.
    pub responses: bool,
    /// Log one query in this many (1: all).
    pub sample: u32,
    /// Messages queued for the writer at most; more are dropped.
    pub queue: usize,
}

/// Default `queue`.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Largest `queue`: a few hundred MiB of queued messages at most.
pub const MAX_QUEUE: usize = 1_000_000;

/// The longest path a unix socket address holds (`sun_path` less the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// This host's name, or "veer" when it has none.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if r == 0 && !s.is_empty() => s.to_string(),
        _ => "veer".to_string(),
    }
}

impl Validator<'_> {
    pub(super) fn dnstap(
        &mut self,
        spec: Option<Spanned<file::DnstapSpec>>,
    ) -> Option<DnstapConfig> {
        let spec = spec?;
        let line = self.line(&spec);
        let d = spec.into_inner();
        let output = match (&d.socket, &d.file) {
            (Some(s), None) => {
                let path = self.resolve(s.get_ref());
                if path.as_os_str().len() > MAX_SOCKET_PATH {
                    self.error(
                        s,
                        format!(
                            "[dnstap] socket `{}` is longer than a unix socket path may be ({MAX_SOCKET_PATH} bytes)",
                            path.display()
                        ),
                    );
                }
                DnstapOutput::Socket(path)
            }
            (None, Some(f)) => DnstapOutput::File(self.resolve(f.get_ref())),
            (Some(_), Some(f)) => {
                self.error(f, "[dnstap] takes socket or file, not both");
                return None;
            }
            (None, None) => {
                self.error_at(line, "[dnstap] needs socket or file");
                return None;
            }
        };
        let identity = match &d.identity {
            Some(i) if i.get_ref().len() > 255 => {
                self.error(i, "[dnstap] identity is longer than 255 bytes");
                String::new()
            }
            Some(i) => i.get_ref().clone(),
            None => hostname(),
        };
        let queries = d.queries.unwrap_or(true);
        let responses = d.responses.unwrap_or(true);
        if !queries && !responses {
            self.error_at(
                line,
                "[dnstap] with queries = false and responses = false logs nothing: remove the table",
            );
        }
        let sample = match &d.sample {
            Some(s) if *s.get_ref() < 1 || *s.get_ref() > u32::MAX as i64 => {
                self.error(s, "[dnstap] sample must be 1 or more (1: every query)");
                1
            }
            Some(s) => *s.get_ref() as u32,
            None => 1,
        };
        let queue = match &d.queue {
            Some(q) if *q.get_ref() < 1 || *q.get_ref() > MAX_QUEUE as i64 => {
                self.error(q, format!("[dnstap] queue must be 1 to {MAX_QUEUE}"));
                DEFAULT_QUEUE
            }
            Some(q) => *q.get_ref() as usize,
            None => DEFAULT_QUEUE,
        };
        Some(DnstapConfig {
            output,
            identity,
            queries,
            responses,
            sample,
            queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HEAD: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\n";

    fn parse(table: &str) -> Result<Option<DnstapConfig>, Vec<String>> {
        let text = format!("{HEAD}{table}");
        crate::config::parse(Path::new("/etc/veer/veer.toml"), &text)
            .map(|c| c.dnstap)
            .map_err(|d| d.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn off_without_the_table_and_defaults_with_it() {
        assert_eq!(parse("").unwrap(), None);
        let c = parse("[dnstap]\nfile = \"dnstap.fstrm\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            c.output,
            DnstapOutput::File(PathBuf::from("/etc/veer/dnstap.fstrm"))
        );
        assert!(c.queries && c.responses);
        assert_eq!((c.sample, c.queue), (1, DEFAULT_QUEUE));
        assert_eq!(c.identity, hostname());
        let c = parse(
            "[dnstap]\nsocket = \"/run/veer/dnstap.sock\"\nidentity = \"ns1\"\nqueries = false\nsample = 10\nqueue = 5\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c.output,
            DnstapOutput::Socket(PathBuf::from("/run/veer/dnstap.sock"))
        );
        assert_eq!(c.identity, "ns1");
        assert!(!c.queries && c.responses);
        assert_eq!((c.sample, c.queue), (10, 5));
    }

    #[test]
    fn errors_name_the_key() {
        let e = |t: &str| parse(t).unwrap_err().join("\n");
        assert!(e("[dnstap]\n").contains("needs socket or file"));
        assert!(e("[dnstap]\nsocket = \"a\"\nfile = \"b\"\n").contains("not both"));
        assert!(e("[dnstap]\nfile = \"b\"\nsample = 0\n").contains("sample must be 1 or more"));
        assert!(e("[dnstap]\nfile = \"b\"\nqueue = 0\n").contains("queue must be 1 to"));
        assert!(
            e("[dnstap]\nfile = \"b\"\nqueries = false\nresponses = false\n")
                .contains("logs nothing")
        );
        let long = format!("[dnstap]\nsocket = \"/{}\"\n", "x".repeat(120));
        assert!(e(&long).contains("longer than a unix socket path"));
        assert!(e("[dnstap]\nfile = \"b\"\nbogus = 1\n").contains("bogus"));
    }
}
