//! Command line: `veer serve`, `veer check`, `veer explain`, `veer diff`,
//! `veer status`, `veer reload` and `veer dnssec`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::control::build::Base;
use crate::control::diff::plural;
use crate::runtime;

/// veer: a health-routed authoritative DNS server.
#[derive(Debug, Parser)]
#[command(name = "veer", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `veer=debug`);
    /// RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads (overrides `[server] workers`; default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Validate the config and every zone without binding sockets.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show which answer a client gets and why (offline: config plus the
    /// checkpointed health states, or --down).
    Explain {
        /// The config file (offline: config plus checkpointed states).
        #[arg(long, short, required_unless_present = "api", conflicts_with = "api")]
        config: Option<PathBuf>,
        /// Ask a running server's admin API instead (e.g. http://127.0.0.1:8053).
        #[arg(long)]
        api: Option<String>,
        /// Query name.
        name: String,
        /// Query type.
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// The query's source address.
        #[arg(long)]
        client: std::net::IpAddr,
        /// An EDNS Client Subnet the query carries (e.g. 203.0.113.0/24).
        #[arg(long, value_name = "PREFIX")]
        ecs: Option<String>,
        /// Take these checks as down and every other check as up, instead
        /// of the checkpointed states (comma-separated; empty = all up).
        #[arg(long, value_name = "CHECK,...", value_delimiter = ',', num_args = 0..)]
        down: Option<Vec<String>>,
    },
    /// What reloading a config would change: zones (records), routes,
    /// checks and other tables, compared with `--against` (offline) or
    /// with what a running server serves (`--api`; the server loads the
    /// file, so the path must be readable there).
    Diff {
        /// The new config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The config to compare with (offline).
        #[arg(long, required_unless_present = "api", conflicts_with = "api")]
        against: Option<PathBuf>,
        /// A running server's admin API (e.g. http://127.0.0.1:8053); the
        /// bearer token is read from `--token-file` or `VEER_API_TOKEN`.
        #[arg(long)]
        api: Option<String>,
        /// A file holding the admin API's bearer token.
        #[arg(long, requires = "api")]
        token_file: Option<PathBuf>,
    },
    /// Health of every check, from a running server's admin API.
    Status {
        /// The admin API's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        api: String,
    },
    /// Print the man page (roff) on stdout: `veer manpage > veer.1`.
    Manpage,
    /// Print shell completions on stdout, e.g. `veer completions bash >
    /// /usr/share/bash-completion/completions/veer`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Reload a running server's config and zones through its admin API
    /// (POST /v1/reload); print the new generation, or the errors.
    Reload {
        /// The admin API's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        api: String,
        /// The API's bearer token (`[api] token`); default: the
        /// environment variable VEER_API_TOKEN.
        #[arg(long, conflicts_with = "token_file")]
        token: Option<String>,
        /// A file holding the token (surrounding whitespace ignored).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// DNSSEC keys of the zones: make them, print their DS records.
    Dnssec {
        #[command(subcommand)]
        command: DnssecCommand,
    },
}

/// `veer dnssec` subcommands. Both read the config only (not the zones),
/// so they work before a zone has a key.
#[derive(Debug, Subcommand)]
pub enum DnssecCommand {
    /// Make a new key for a zone in `[dnssec] key_dir` (created, owner
    /// only), published and active now; print its files and DS record.
    Keygen {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The zone (a configured `[[zone]]`).
        zone: String,
        /// 13 (ECDSAP256SHA256) or 15 (ED25519); default: `[dnssec] algorithm`.
        #[arg(long)]
        algorithm: Option<String>,
        /// csk: signs the whole zone; ksk: signs the DNSKEY set while a ZSK
        /// of its algorithm signs the rest; zsk: signs the zone's data.
        #[arg(long, value_enum, default_value_t = Role::Csk)]
        role: Role,
    },
    /// Print the DS records (SHA-256) of a zone's published KSKs and CSKs,
    /// in zone file form, for the parent zone.
    Ds {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The zone.
        zone: String,
    },
    /// List a zone's keys: tag, algorithm, role, timing, state now.
    Keys {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The zone.
        zone: String,
    },
    /// Retire a key (the last step of a rollover, once the parent's DS
    /// names the new key): it stops signing and leaves the DNSKEY set at
    /// the given time (default: now). A running server follows at its next
    /// reload. The last active key of a role is never retired.
    Retire {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The zone.
        zone: String,
        /// The key's tag.
        tag: u16,
        /// When (RFC 3339, e.g. 2026-12-01T12:00:00Z); default: now.
        #[arg(long)]
        at: Option<String>,
    },
}

/// What a new key does. A KSK and a CSK are the same key (flags 257): a
/// KSK signs the zone's data too while no ZSK of its algorithm is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Combined signing key (flags 257).
    Csk,
    /// Key-signing key (flags 257).
    Ksk,
    /// Zone-signing key (flags 256).
    Zsk,
}

/// Initialises logging. hickory's per-request INFO lines are silenced.
pub fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log_level.clone());
    let filter = EnvFilter::try_new(format!(
        "hickory_server=warn,hickory_net=warn,hickory_proto=warn,{filter}"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if matches!(cli.command, Command::Check { .. }) && matches!(cli.log_format, LogFormat::Text) {
        // `veer check` prints diagnostics (`file:line: warning: ...`), not
        // timestamped log lines.
        return builder
            .without_time()
            .with_target(false)
            .with_level(false)
            .with_ansi(false)
            .init();
    }
    match cli.log_format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).init()
        }
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config, workers } => serve(config, workers),
        Command::Check { config } => check(config),
        Command::Explain {
            config,
            api,
            name,
            rtype,
            client,
            ecs,
            down,
        } => {
            let query = crate::explain::Query {
                name,
                rtype,
                client,
                ecs,
                down: down.map(|d| d.into_iter().filter(|s| !s.is_empty()).collect()),
            };
            match (config, api) {
                (Some(config), _) => explain(config, &query),
                (None, Some(api)) => explain_online(&api, &query),
                (None, None) => unreachable!("clap requires --config or --api"),
            }
        }
        Command::Diff {
            config,
            against,
            api,
            token_file,
        } => match (against, api) {
            (Some(old), _) => diff_offline(&old, &config),
            (None, Some(api)) => diff_online(&api, &config, token_file.as_deref()),
            (None, None) => unreachable!("clap requires --against or --api"),
        },
        Command::Status { api } => status(&api),
        Command::Manpage => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            let rendered = clap_mangen::Man::new(Cli::command()).render(&mut out);
            print_bytes("manpage", rendered.map(|()| out))
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "veer", &mut out);
            print_bytes("completions", Ok(out))
        }
        Command::Reload {
            api,
            token,
            token_file,
        } => reload(&api, token, token_file.as_deref()),
        Command::Dnssec {
            command:
                DnssecCommand::Keygen {
                    config,
                    zone,
                    algorithm,
                    role,
                },
        } => dnssec_keygen(&config, &zone, algorithm.as_deref(), role),
        Command::Dnssec {
            command: DnssecCommand::Ds { config, zone },
        } => dnssec_ds(&config, &zone),
        Command::Dnssec {
            command: DnssecCommand::Keys { config, zone },
        } => dnssec_keys(&config, &zone),
        Command::Dnssec {
            command:
                DnssecCommand::Retire {
                    config,
                    zone,
                    tag,
                    at,
                },
        } => dnssec_retire(&config, &zone, tag, at.as_deref()),
    }
}

/// The config at `path`, the configured zone named `zone` and the key
/// directory, for `veer dnssec`; or the errors, printed.
fn dnssec_setup(
    what: &str,
    path: &std::path::Path,
    zone: &str,
) -> Result<(crate::config::Config, hickory_proto::rr::Name, PathBuf), ExitCode> {
    let config = crate::config::load(path).map_err(|d| {
        for e in &d.0 {
            eprintln!("{e}");
        }
        ExitCode::FAILURE
    })?;
    let fail = |m: String| {
        eprintln!("veer dnssec {what}: {m}");
        ExitCode::FAILURE
    };
    let name = hickory_proto::rr::Name::from_utf8(zone)
        .map(|mut n| {
            n.set_fqdn(true);
            n.to_lowercase()
        })
        .map_err(|e| fail(format!("zone `{zone}`: {e}")))?;
    if !config.zones.iter().any(|z| z.origin == name) {
        return Err(fail(format!(
            "zone {name} is not a [[zone]] of {}",
            path.display()
        )));
    }
    let Some(dir) = config.dnssec.key_dir.clone() else {
        return Err(fail(format!(
            "{} sets no key directory: set [dnssec] key_dir or [server] state_dir",
            path.display()
        )));
    };
    Ok((config, name, dir))
}

/// `veer dnssec keygen`: a new key, its file names and (for a KSK or CSK)
/// its DS record on stdout.
fn dnssec_keygen(
    path: &std::path::Path,
    zone: &str,
    algorithm: Option<&str>,
    role: Role,
) -> ExitCode {
    use crate::dnssec::key;
    let (config, name, dir) = match dnssec_setup("keygen", path, zone) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let algorithm = match algorithm {
        None => config.dnssec.algorithm,
        Some(a) => match key::parse_algorithm(a) {
            Some(a) => a,
            None => {
                eprintln!(
                    "veer dnssec keygen: algorithm `{a}`: use 13 (ecdsap256sha256) or 15 (ed25519)"
                );
                return ExitCode::FAILURE;
            }
        },
    };
    let created_dir = !dir.exists();
    let k = match key::generate(
        &name,
        algorithm,
        role != Role::Zsk,
        &dir,
        std::time::SystemTime::now(),
    ) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("veer dnssec keygen: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Made as root for a server that runs as `[server] user`: the files
    // are that user's, who reads them on every reload.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if let Some(user) = &config.server.user
        && root
    {
        let owned = crate::privilege::resolve(user, config.server.group.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|t| {
                let mut paths = vec![k.path.clone(), k.key_path()];
                if created_dir {
                    paths.push(dir.clone());
                }
                paths.iter().try_for_each(|p| {
                    std::os::unix::fs::lchown(p, Some(t.uid), Some(t.gid))
                        .map_err(|e| format!("{}: {e}", p.display()))
                })
            });
        if let Err(e) = owned {
            eprintln!(
                "veer dnssec keygen: the key is made, but cannot be given to user {user}: {e}"
            );
            return ExitCode::FAILURE;
        }
    }
    println!("{}", k.key_path().display());
    println!("{}", k.path.display());
    if k.is_ksk() {
        match k.ds(hickory_proto::dnssec::DigestType::SHA256) {
            Ok(ds) => println!("{} 3600 IN DS {ds}", name.to_ascii()),
            Err(e) => eprintln!("veer dnssec keygen: {e}"),
        }
    }
    if !config.zones.iter().any(|z| z.origin == name && z.dnssec) {
        eprintln!("note: zone {name} does not have dnssec = true (yet)");
    }
    ExitCode::SUCCESS
}

/// `veer dnssec ds`: the DS records (SHA-256) of the zone's published
/// KSKs and CSKs, one per line.
fn dnssec_ds(path: &std::path::Path, zone: &str) -> ExitCode {
    let (_config, name, dir) = match dnssec_setup("ds", path, zone) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let keys = match crate::dnssec::load_zone_keys(&name, &dir) {
        Ok(k) => k,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let now = std::time::SystemTime::now();
    let mut printed = 0;
    for k in keys
        .iter()
        .filter(|k| k.is_ksk() && k.timing.published_at(now))
    {
        match k.ds(hickory_proto::dnssec::DigestType::SHA256) {
            Ok(ds) => {
                println!("{} 3600 IN DS {ds}", name.to_ascii());
                printed += 1;
            }
            Err(e) => eprintln!("veer dnssec ds: {e}"),
        }
    }
    if printed == 0 {
        eprintln!(
            "veer dnssec ds: zone {name} has no published KSK or CSK in {} (run veer dnssec keygen --config {} {name})",
            dir.display(),
            path.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The keys of `zone`, or the errors printed.
fn zone_keys(
    what: &str,
    path: &std::path::Path,
    zone: &str,
) -> Result<(hickory_proto::rr::Name, Vec<crate::dnssec::key::ZoneKey>), ExitCode> {
    let (_config, name, dir) = dnssec_setup(what, path, zone)?;
    let keys = crate::dnssec::load_zone_keys(&name, &dir).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        ExitCode::FAILURE
    })?;
    Ok((name, keys))
}

/// `veer dnssec keys`: one line per key.
fn dnssec_keys(path: &std::path::Path, zone: &str) -> ExitCode {
    use crate::dnssec::key::format_time;
    let (_name, keys) = match zone_keys("keys", path, zone) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let now = std::time::SystemTime::now();
    let t = |x: Option<std::time::SystemTime>| x.map_or("-".to_string(), format_time);
    println!("tag   alg role    state        publish        activate       inactive       delete");
    for k in &keys {
        let state = match (k.timing.published_at(now), k.timing.active_at(now)) {
            (_, true) => "active",
            (true, false) => "published",
            (false, false) => "retired",
        };
        println!(
            "{:<5} {:<3} {:<7} {:<12} {:<14} {:<14} {:<14} {}",
            k.tag,
            u8::from(k.algorithm),
            if k.is_ksk() { "KSK/CSK" } else { "ZSK" },
            state,
            t(k.timing.publish),
            t(k.timing.activate),
            t(k.timing.inactive),
            t(k.timing.delete)
        );
    }
    ExitCode::SUCCESS
}

/// `veer dnssec retire`: Inactive and Delete set on one key.
fn dnssec_retire(path: &std::path::Path, zone: &str, tag: u16, at: Option<&str>) -> ExitCode {
    let (name, keys) = match zone_keys("retire", path, zone) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let at = match at.map(humantime::parse_rfc3339_weak) {
        None => std::time::SystemTime::now(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("veer dnssec retire: --at: {e}; use RFC 3339");
            return ExitCode::FAILURE;
        }
    };
    let Some(key) = keys.iter().find(|k| k.tag == tag) else {
        eprintln!("veer dnssec retire: zone {name} has no key with tag {tag}");
        return ExitCode::FAILURE;
    };
    // Another key of the same role (and algorithm) must go on signing:
    // else the zone would go bogus at `at`.
    let others = keys.iter().any(|k| {
        k.tag != tag
            && k.is_ksk() == key.is_ksk()
            && k.algorithm == key.algorithm
            && k.timing.active_at(at)
    });
    if !others {
        eprintln!(
            "veer dnssec retire: key {tag} is the last {} of zone {name} active at that time; make its successor first (veer dnssec keygen)",
            if key.is_ksk() { "KSK/CSK" } else { "ZSK" }
        );
        return ExitCode::FAILURE;
    }
    let mut timing = key.timing;
    timing.inactive = Some(at);
    timing.delete = Some(at);
    if let Err(e) = crate::dnssec::key::set_timing(key, &timing) {
        eprintln!("veer dnssec retire: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "key {tag} of {name}: inactive and deleted from {}; reload a running server (SIGHUP or POST /v1/reload)",
        crate::dnssec::key::format_time(at)
    );
    ExitCode::SUCCESS
}

/// Writes generated text to stdout (a closed pipe is no error worth a
/// panic: `veer manpage | head`).
fn print_bytes(what: &str, out: std::io::Result<Vec<u8>>) -> ExitCode {
    use std::io::Write;
    match out.and_then(|b| std::io::stdout().write_all(&b)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veer {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// GETs `url` and parses JSON (a one-shot runtime: the CLI is not async).
fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{url}: {status}: {}",
                body["error"].as_str().unwrap_or("")
            ));
        }
        Ok(body)
    })
}

fn status(api: &str) -> ExitCode {
    let url = format!("{}/v1/health", api.trim_end_matches('/'));
    let body = match get_json(&url) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("veer status: {e}");
            return ExitCode::FAILURE;
        }
    };
    let empty = Vec::new();
    let checks = body["checks"].as_array().unwrap_or(&empty);
    let rows: Vec<[String; 6]> = checks
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            let state = if c["forced"].as_bool() == Some(true) {
                format!("{} (forced; real {})", s("state"), s("real_state"))
            } else {
                s("state")
            };
            let latency = c["last_latency_ms"]
                .as_f64()
                .map(|l| format!("{l:.1}ms"))
                .unwrap_or_else(|| "-".into());
            [
                s("name"),
                s("kind"),
                state,
                s("since"),
                latency,
                s("reason"),
            ]
        })
        .collect();
    let header = ["CHECK", "KIND", "STATE", "SINCE", "LATENCY", "REASON"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    let down = checks.iter().filter(|c| c["state"] == "down").count();
    println!("{} checks, {down} down", checks.len());
    ExitCode::SUCCESS
}

/// `veer reload`: POST /v1/reload with the bearer token.
fn reload(api: &str, token: Option<String>, token_file: Option<&std::path::Path>) -> ExitCode {
    let token = match (token, token_file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => match std::fs::read_to_string(f) {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) => {
                eprintln!("veer reload: {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        },
        (None, None) => std::env::var("VEER_API_TOKEN").ok(),
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        eprintln!("veer reload: no token: give --token, --token-file or VEER_API_TOKEN");
        return ExitCode::FAILURE;
    };
    let url = format!("{}/v1/reload", api.trim_end_matches('/'));
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                // A reload signs zones again: it may take a while.
                let resp = reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(&token)
                    .timeout(std::time::Duration::from_secs(300))
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status();
                let body: serde_json::Value = resp
                    .json()
                    .await
                    .map_err(|e| format!("{url}: {status}: {e}"))?;
                Ok((status, body))
            })
        });
    match result {
        Ok((status, body)) if status.is_success() && body["ok"] == true => {
            println!(
                "reload applied: generation {}",
                body["generation"].as_u64().unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Ok((_, body)) if body["ok"] == false => {
            eprintln!("reload rejected; the server keeps serving the previous config:");
            for e in body["errors"].as_array().into_iter().flatten() {
                eprintln!("{}", e.as_str().unwrap_or_default());
            }
            ExitCode::FAILURE
        }
        Ok((status, body)) => {
            eprintln!(
                "veer reload: {url}: {status}: {}",
                body["error"].as_str().unwrap_or_default()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("veer reload: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: PathBuf, workers: Option<usize>) -> ExitCode {
    let base = match Base::load_path(&path, None) {
        Ok(b) => b,
        Err(d) => {
            for e in &d.0 {
                tracing::error!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = workers.or(base.config.server.workers) {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        // The handlers go in before anything is served, not when `serve`
        // first polls the future (after it listens): a SIGINT or SIGTERM
        // that comes in between would otherwise kill the process at once,
        // unlogged, with a failing status.
        let shutdown = shutdown_signal();
        runtime::serve(base, shutdown).await
    });
    // Serving has stopped (and in-flight answers were written): a blocking
    // task still running (a name lookup for a probe, a checkpoint write,
    // which is atomic) must not hold up the exit for long.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(runtime::ServeError::Invalid(d)) => {
            for e in &d.0 {
                tracing::error!("{e}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the SIGINT and SIGTERM handlers (in a runtime) and returns
/// what completes on either; one that comes before it is polled is kept.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

fn explain(path: PathBuf, query: &crate::explain::Query) -> ExitCode {
    let base = match Base::load_path(&path, None) {
        Ok(b) => b,
        Err(d) => {
            for e in &d.0 {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match crate::explain::explain(base, query) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("veer explain: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `veer explain --api`: the running server's answer, from `/v1/explain`
/// (the same `resolve` as queries, over the live snapshot).
fn explain_online(api: &str, q: &crate::explain::Query) -> ExitCode {
    if q.down.is_some() {
        eprintln!("veer explain: --down only applies offline (--config)");
        return ExitCode::FAILURE;
    }
    let mut url = reqwest::Url::parse(&format!("{}/v1/explain", api.trim_end_matches('/')))
        .unwrap_or_else(|_| {
            reqwest::Url::parse("http://127.0.0.1:8053/v1/explain").expect("literal")
        });
    url.query_pairs_mut()
        .append_pair("name", &q.name)
        .append_pair("type", &q.rtype)
        .append_pair("client", &q.client.to_string());
    if let Some(ecs) = &q.ecs {
        url.query_pairs_mut().append_pair("ecs", ecs);
    }
    let body = match get_json(url.as_str()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("veer explain: {e}");
            return ExitCode::FAILURE;
        }
    };
    let s = |k: &str| body[k].as_str().unwrap_or("").to_string();
    println!("query: {} {}", s("name"), s("type"));
    println!(
        "client: {}{}",
        q.client,
        q.ecs
            .as_ref()
            .map(|e| format!(" with ECS {e}"))
            .unwrap_or_default()
    );
    let checks = body["checks"].as_array().cloned().unwrap_or_default();
    if !checks.is_empty() {
        println!("checks:");
        for c in &checks {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            let forced = if c["forced"].as_bool() == Some(true) {
                format!(" (forced; real state {})", s("real_state"))
            } else {
                String::new()
            };
            println!("  {}: {}{forced}: {}", s("name"), s("state"), s("reason"));
        }
    }
    if let Some(route) = body["route"].as_object() {
        let r = |k: &str| {
            route
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        println!(
            "route {} {} (policy {}):",
            r("name"),
            r("type"),
            r("policy")
        );
        for step in route
            .get("path")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            println!("  {}", step.as_str().unwrap_or(""));
        }
        let healthy = route.get("healthy").and_then(|v| v.as_bool()) == Some(true);
        println!(
            "  route health: {}",
            if healthy { "healthy" } else { "down" }
        );
    } else {
        println!("no route at {} {}: zone data answers", s("name"), s("type"));
    }
    // In a fleet: which instance saw what, and when.
    for c in body["votes"].as_array().into_iter().flatten() {
        let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
        println!(
            "  check {}: fleet verdict {}{}",
            s(c, "check"),
            s(c, "verdict"),
            if c["degraded"].as_bool() == Some(true) {
                " (degraded: decided from this instance's own probes)"
            } else {
                ""
            }
        );
        for v in c["votes"].as_array().into_iter().flatten() {
            let note = s(v, "note");
            println!(
                "    {} says {} since {}{}",
                s(v, "instance"),
                s(v, "state"),
                s(v, "since"),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                }
            );
        }
    }
    let steps = body["pick"].as_array().cloned().unwrap_or_default();
    if !steps.is_empty() {
        println!("pick:");
        for st in steps {
            println!("  {}", st.as_str().unwrap_or(""));
        }
    }
    println!("answer: {}", s("rcode"));
    for a in body["answer"].as_array().into_iter().flatten() {
        println!("  {}", a.as_str().unwrap_or(""));
    }
    for a in body["authority"].as_array().into_iter().flatten() {
        println!("  (authority) {}", a.as_str().unwrap_or(""));
    }
    if let Some(t) = body["ttl"].as_u64() {
        println!("ttl: {t}");
    }
    println!("ecs scope: /{}", body["ecs_scope"].as_u64().unwrap_or(0));
    ExitCode::SUCCESS
}

/// `veer diff --against OLD`: both configs loaded as a server loads them.
fn diff_offline(old: &std::path::Path, new: &std::path::Path) -> ExitCode {
    let load = |p: &std::path::Path| {
        Base::load_path(p, None).map_err(|d| {
            for e in &d.0 {
                eprintln!("{e}");
            }
            eprintln!("{}: {}", p.display(), plural(d.0.len(), "error"));
        })
    };
    let (Ok(old), Ok(new)) = (load(old), load(new)) else {
        return ExitCode::FAILURE;
    };
    let d = crate::control::diff::diff(&old, &new);
    println!("{}", d.summary());
    print!("{}", d.details());
    ExitCode::SUCCESS
}

/// `veer diff --api URL`: the running server loads the file and compares
/// it with what it serves (`POST /v1/diff`), applying nothing.
fn diff_online(
    api: &str,
    config: &std::path::Path,
    token_file: Option<&std::path::Path>,
) -> ExitCode {
    let token = match token_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => t.trim().to_string(),
            Err(e) => {
                eprintln!("veer diff: {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        },
        None => std::env::var("VEER_API_TOKEN").unwrap_or_default(),
    };
    // The server resolves a relative path against its own directory.
    let path = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let url = format!("{}/v1/diff", api.trim_end_matches('/'));
    let result = (|| -> Result<(reqwest::StatusCode, serde_json::Value), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let resp = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&token)
                .json(&serde_json::json!({ "config": path }))
                .timeout(std::time::Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = resp.status();
            let body = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
            Ok((status, body))
        })
    })();
    let (status, body) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("veer diff: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(errors) = body["errors"].as_array() {
        for e in errors {
            eprintln!("{}", e.as_str().unwrap_or(""));
        }
        eprintln!("{}: {}", path.display(), plural(errors.len(), "error"));
        return ExitCode::FAILURE;
    }
    if !status.is_success() {
        eprintln!(
            "veer diff: {url}: {status}: {}",
            body["error"].as_str().unwrap_or("")
        );
        return ExitCode::FAILURE;
    }
    match serde_json::from_value::<crate::control::diff::ReloadDiff>(body["diff"].clone()) {
        Ok(d) => {
            println!("{}", d.summary());
            print!("{}", d.details());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("veer diff: {url}: unexpected answer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    let result = Base::load_path(&path, None);
    match result {
        Ok(base) => {
            for w in crate::config::warnings(&base.config)
                .into_iter()
                .chain(crate::config::fleet_warnings(&base.config))
            {
                eprintln!("{w}");
            }
            println!(
                "{}: ok: {} zones, {} records, {} checks, {} routes",
                path.display(),
                base.zones.len(),
                base.records(),
                base.config.checks.len(),
                base.config.routes.len()
            );
            // The process ends here: freeing a large zone record by
            // record would only delay the exit (0.4 s for a million).
            std::mem::forget(base);
            ExitCode::SUCCESS
        }
        Err(d) => {
            for e in &d.0 {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), d.0.len());
            ExitCode::FAILURE
        }
    }
}
