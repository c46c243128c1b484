//! The floor for an HTTP health probe, for bench/probe-cpu.py: a
//! single-threaded loop of blocking connect, one `GET /hc/K HTTP/1.1` with
//! `Connection: close`, read the status line and headers (and a
//! Content-Length body), close. It paces itself like veer's prober: N
//! paths, each once per interval, spread evenly, for a number of seconds.
//! std only; built with `rustc -O` by the bench script.
//!
//!   minprobe N INTERVAL_MS SECONDS PORT[,PORT...]
//!
//! Prints `requests failures` when done.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: minprobe N INTERVAL_MS SECONDS PORT[,PORT...]");
        std::process::exit(2);
    }
    let n: usize = args[1].parse().expect("N");
    let interval = Duration::from_millis(args[2].parse().expect("INTERVAL_MS"));
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let ports: Vec<u16> = args[4].split(',').map(|p| p.parse().expect("PORT")).collect();
    let step = interval / n as u32;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (mut requests, mut failures) = (0u64, 0u64);
    let mut buf = [0u8; 4096];
    let mut next = start;
    let mut k = 0usize;
    while next < end {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let port = ports[k % ports.len()];
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        requests += 1;
        if get(to, k, &mut buf).is_err() {
            failures += 1;
        }
        k = (k + 1) % n;
        next += step;
    }
    println!("{requests} {failures}");
}

fn get(to: SocketAddr, k: usize, buf: &mut [u8]) -> std::io::Result<()> {
    let mut s = TcpStream::connect(to)?;
    let req = format!(
        "GET /hc/{k} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut have = 0;
    loop {
        let got = s.read(&mut buf[have..])?;
        if got == 0 {
            return Ok(()); // closed by the server
        }
        have += got;
        let seen = &buf[..have];
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&seen[..end]).unwrap_or("");
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if have >= end + 4 + len {
                return Ok(());
            }
        }
        if have == buf.len() {
            return Ok(());
        }
    }
}
