//! `[dnstap]`: query logging in dnstap format, read back with BIND's
//! `dnstap-read` (bind9-dnsutils): to a file (START ... STOP, ended at
//! SIGTERM), to a unix socket through a Frame Streams reader written
//! here (READY, ACCEPT, START ... STOP, FINISH), and to a socket nobody
//! reads (answers go on, messages are dropped and counted).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// A loopback port free for both UDP and TCP, for dig's `-b`.
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The `auth` scenario with `table` appended to its config.
fn scene(table: &str) -> tempfile::TempDir {
    let dir = scenario("auth");
    let config = dir.path().join("veer.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(table);
    std::fs::write(&config, text).unwrap();
    dir
}

/// `dnstap-read -y FILE`: its YAML documents, one per message.
fn dnstap_read(file: &Path) -> Vec<String> {
    let out = Command::new("dnstap-read")
        .arg("-y")
        .arg(file)
        .output()
        .expect("dnstap-read (bind9-dnsutils) is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dnstap-read -y {} failed:\n{text}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text.split("\n---")
        .map(|d| d.trim_start_matches("---").to_string())
        .filter(|d| d.contains("message:"))
        .collect()
}

/// The value of `key:` in a YAML document (first occurrence, unquoted).
fn field<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    doc.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .map(|v| v.trim().trim_matches('"'))
}

/// The one document of `mtype` (AUTH_QUERY, AUTH_RESPONSE) whose message
/// asks for `qname`.
fn find<'a>(docs: &'a [String], mtype: &str, qname: &str) -> &'a str {
    let question = format!(";{qname}.");
    let found: Vec<&String> = docs
        .iter()
        .filter(|d| field(d, "type") == Some("MESSAGE"))
        .filter(|d| d.contains(&format!("type: {mtype}")) && d.contains(&question))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {mtype} for {qname} expected in:\n{}",
        docs.join("\n---\n")
    );
    found[0]
}

/// Asserts the AUTH_QUERY and AUTH_RESPONSE of a query for `qname` sent
/// over `proto` from `client_port` to `server`.
fn assert_logged(docs: &[String], qname: &str, proto: &str, client_port: u16, server: SocketAddr) {
    for mtype in ["AUTH_QUERY", "AUTH_RESPONSE"] {
        let d = find(docs, mtype, qname);
        assert_eq!(field(d, "identity"), Some("ns-test"), "{d}");
        assert_eq!(field(d, "socket_family"), Some("INET"), "{d}");
        assert_eq!(field(d, "socket_protocol"), Some(proto), "{d}");
        assert_eq!(field(d, "query_address"), Some("127.0.0.1"), "{d}");
        assert_eq!(field(d, "response_address"), Some("127.0.0.1"), "{d}");
        assert_eq!(
            field(d, "query_port"),
            Some(client_port.to_string().as_str()),
            "{d}"
        );
        assert_eq!(
            field(d, "response_port"),
            Some(server.port().to_string().as_str()),
            "{d}"
        );
        // dnstap-read prints the time of the message's own event.
        if mtype == "AUTH_RESPONSE" {
            assert!(field(d, "response_time").is_some(), "{d}");
            assert!(d.contains("response_message:"), "{d}");
            assert!(d.contains("status: NOERROR"), "{d}");
        } else {
            assert!(field(d, "query_time").is_some(), "{d}");
            assert!(d.contains("query_message:"), "{d}");
        }
    }
}

/// A query for `name` over UDP (or TCP) from a port chosen here.
fn ask(veer: &Veer, name: &str, tcp: bool) -> u16 {
    let port = free_port();
    let b = format!("127.0.0.1#{port}");
    let mut args = vec!["-b", &b, name, "A"];
    if tcp {
        args.push("+tcp");
    }
    let d = veer.dig(&args);
    assert!(!d.answer_data().is_empty(), "{name}: no answer");
    port
}

#[test]
fn a_file_holds_each_query_and_response_with_protocol_and_ports() {
    let dir = scene("\n[dnstap]\nfile = \"dnstap.fstrm\"\nidentity = \"ns-test\"\n");
    let mut veer = Veer::start_in(dir.path());
    let udp = ask(&veer, "www.example.test", false);
    let tcp = ask(&veer, "mail.example.test", true);
    let server = veer.addr;
    assert!(veer.terminate().success(), "{}", veer.logs());
    let docs = dnstap_read(&dir.path().join("dnstap.fstrm"));
    assert_eq!(docs.len(), 4, "{}", docs.join("\n---\n"));
    assert_logged(&docs, "www.example.test", "UDP", udp, server);
    assert_logged(&docs, "mail.example.test", "TCP", tcp, server);
}

#[test]
fn sampling_and_responses_only() {
    let dir = scene(
        "\n[dnstap]\nfile = \"dnstap.fstrm\"\nidentity = \"ns-test\"\nqueries = false\nsample = 2\n",
    );
    let mut veer = Veer::start_in(dir.path());
    for _ in 0..4 {
        ask(&veer, "www.example.test", false);
    }
    assert!(veer.terminate().success());
    let docs = dnstap_read(&dir.path().join("dnstap.fstrm"));
    assert_eq!(docs.len(), 2, "{}", docs.join("\n---\n"));
    assert!(docs.iter().all(|d| d.contains("type: AUTH_RESPONSE")));
}

/// A Frame Streams reader on a unix socket: the handshake, then every
/// data frame until STOP (answered with FINISH).
struct Reader {
    frames: std::sync::mpsc::Receiver<Vec<u8>>,
    done: std::thread::JoinHandle<bool>,
}

fn control(kind: u32, content_type: bool) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if content_type {
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        body.extend_from_slice(CONTENT_TYPE);
    }
    let mut out = vec![0; 4];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn read_u32(r: &mut impl Read) -> u32 {
    let mut b = [0; 4];
    r.read_exact(&mut b).unwrap();
    u32::from_be_bytes(b)
}

/// Reads a control frame (after its escape) and returns its type and body.
fn read_control_body(r: &mut impl Read) -> (u32, Vec<u8>) {
    let len = read_u32(r) as usize;
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (u32::from_be_bytes(body[..4].try_into().unwrap()), body)
}

impl Reader {
    fn listen(path: &Path) -> Reader {
        let listener = UnixListener::bind(path).unwrap();
        let (tx, frames) = std::sync::mpsc::channel();
        let done = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            assert_eq!(read_u32(&mut s), 0, "a control frame first");
            let (kind, body) = read_control_body(&mut s);
            assert_eq!(kind, 4, "READY");
            assert!(body.windows(CONTENT_TYPE.len()).any(|w| w == CONTENT_TYPE));
            s.write_all(&control(1, true)).unwrap(); // ACCEPT
            assert_eq!(read_u32(&mut s), 0);
            let (kind, body) = read_control_body(&mut s);
            assert_eq!(kind, 2, "START");
            assert!(body.windows(CONTENT_TYPE.len()).any(|w| w == CONTENT_TYPE));
            loop {
                let len = read_u32(&mut s) as usize;
                if len == 0 {
                    let (kind, _) = read_control_body(&mut s);
                    assert_eq!(kind, 3, "STOP");
                    s.write_all(&control(5, false)).unwrap(); // FINISH
                    return true;
                }
                let mut frame = vec![0; len];
                s.read_exact(&mut frame).unwrap();
                if tx.send(frame).is_err() {
                    return false;
                }
            }
        });
        Reader { frames, done }
    }

    /// The frames received so far, as a Frame Streams file for dnstap-read.
    fn to_file(frames: &[Vec<u8>], path: &Path) -> PathBuf {
        let mut out = control(2, true);
        for f in frames {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&control(3, false));
        std::fs::write(path, out).unwrap();
        path.to_path_buf()
    }
}

/// `GET /metrics` from the admin API the logs name.
fn metric(veer: &Veer, result: &str) -> u64 {
    let api: SocketAddr = veer
        .logs()
        .lines()
        .find_map(|l| l.split("api listening on ").nth(1))
        .expect("api listening")
        .trim()
        .parse()
        .unwrap();
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let line = format!("veer_dnstap_messages_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

const API: &str = "\n[api]\nlisten = \"127.0.0.1:0\"\n";

#[test]
fn a_socket_reader_gets_the_handshake_the_messages_and_stop() {
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("tap.sock");
    let reader = Reader::listen(&sock);
    let dir = scene(&format!(
        "{API}\n[dnstap]\nsocket = \"{}\"\nidentity = \"ns-test\"\n",
        sock.display()
    ));
    let mut veer = Veer::start_in(dir.path());
    let udp = ask(&veer, "www.example.test", false);
    let tcp = ask(&veer, "mail.example.test", true);
    assert!(
        wait_until(Duration::from_secs(10), || metric(&veer, "written") == 4),
        "written: {}\n{}",
        metric(&veer, "written"),
        veer.logs()
    );
    assert_eq!(metric(&veer, "dropped"), 0);
    let server = veer.addr;
    assert!(veer.terminate().success(), "{}", veer.logs());
    assert!(reader.done.join().unwrap(), "the stream ended with STOP");
    let frames: Vec<Vec<u8>> = reader.frames.try_iter().collect();
    let file = Reader::to_file(&frames, &sockdir.path().join("got.fstrm"));
    let docs = dnstap_read(&file);
    assert_eq!(docs.len(), 4, "{}", docs.join("\n---\n"));
    assert_logged(&docs, "www.example.test", "UDP", udp, server);
    assert_logged(&docs, "mail.example.test", "TCP", tcp, server);
}

#[test]
fn without_a_reader_answers_go_on_and_messages_drop_until_it_comes() {
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("tap.sock");
    let dir = scene(&format!(
        "{API}\n[dnstap]\nsocket = \"{}\"\nidentity = \"ns-test\"\nqueue = 4\n",
        sock.display()
    ));
    let mut veer = Veer::start_in(dir.path());
    veer.expect_log("dnstap: cannot connect", Duration::from_secs(5));
    // Every query is answered at once; past the queue (2 queries of 2
    // messages) messages are dropped.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        ask(&veer, "www.example.test", false);
        ask(&veer, "www.example.test", true);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(metric(&veer, "dropped"), 36);
    assert_eq!(metric(&veer, "written"), 0);
    // A reader comes: the writer reconnects (backoff at most 10 s) and
    // hands it what was queued, then new messages.
    let reader = Reader::listen(&sock);
    veer.expect_log("dnstap: connected to", Duration::from_secs(15));
    let udp = ask(&veer, "mail.example.test", false);
    assert!(
        wait_until(Duration::from_secs(10), || metric(&veer, "written") == 6),
        "written: {}",
        metric(&veer, "written")
    );
    let server = veer.addr;
    assert!(veer.terminate().success());
    assert!(reader.done.join().unwrap());
    let frames: Vec<Vec<u8>> = reader.frames.try_iter().collect();
    let docs = dnstap_read(&Reader::to_file(&frames, &sockdir.path().join("got.fstrm")));
    assert_eq!(docs.len(), 6);
    assert_logged(&docs, "mail.example.test", "UDP", udp, server);
}
