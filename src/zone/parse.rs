//! RFC 1035 master-file reader with line numbers.
//!
//! hickory's `Parser` knows every RDATA syntax but reports errors without a
//! location. This module does the file-level work itself (logical entries
//! across parentheses, `$ORIGIN`, `$TTL`, `$INCLUDE file [origin]`, owner
//! and TTL inheritance) and hands each record, made explicit, to hickory's
//! parser. Every error therefore names the file and line of its entry.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::{Parser, parse_ttl};

use crate::diag::{Diagnostic, Diagnostics};

/// Deepest `$INCLUDE` nesting accepted.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a record came from.
#[derive(Debug, Clone)]
pub struct Loc {
    /// The file (the zone file or one it includes).
    pub file: Arc<Path>,
    /// 1-based line of the record's first line.
    pub line: usize,
}

impl Loc {
    /// A diagnostic at this location.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&*self.file, self.line, message)
    }
}

/// The records of one master file (and its includes), in file order.
#[derive(Debug)]
pub struct ParsedFile {
    /// Every record with its location.
    pub records: Vec<(Record, Loc)>,
    /// The zone file and every file it includes, for change detection.
    pub files: Vec<PathBuf>,
    /// FNV-1a over the text of every file read, in order: detects content
    /// changes made without a serial change.
    pub content_hash: u64,
}

/// FNV-1a 64 continuing from `h` (start with [`FNV_START`]).
pub fn fnv64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// FNV-1a 64 offset basis.
pub const FNV_START: u64 = 0xcbf29ce484222325;

/// Reads the master file at `path` for the zone `origin`. Returns every
/// syntax error found (parsing continues after a bad entry).
pub fn read_file(path: &Path, origin: &Name) -> Result<ParsedFile, Diagnostics> {
    let mut records = Vec::new();
    let (files, content_hash) = read_file_into(path, origin, &mut |r, loc| records.push((r, loc)))?;
    Ok(ParsedFile {
        records,
        files,
        content_hash,
    })
}

/// [`read_file`], handing each record to `sink` as it is read (a large
/// zone is built without a second copy of all its records). Returns the
/// files read and the hash of their text; on errors, `sink` may have been
/// given records of a file that is then refused.
pub fn read_file_into(
    path: &Path,
    origin: &Name,
    sink: &mut dyn FnMut(Record, Loc),
) -> Result<(Vec<PathBuf>, u64), Diagnostics> {
    let mut reader = Reader {
        sink,
        files: Vec::new(),
        content_hash: FNV_START,
        errors: Vec::new(),
        default_ttl: None,
        last_ttl: None,
        last_owner: None,
    };
    reader.file(path, origin.clone(), None, 0);
    if reader.errors.is_empty() {
        Ok((reader.files, reader.content_hash))
    } else {
        Err(Diagnostics(reader.errors))
    }
}

struct Reader<'s> {
    sink: &'s mut dyn FnMut(Record, Loc),
    files: Vec<PathBuf>,
    content_hash: u64,
    errors: Vec<Diagnostic>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, mut origin: Name, included_at: Option<&Loc>, depth: usize) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("cannot read zone file {}: {e}", path.display());
                self.errors.push(match included_at {
                    Some(loc) => loc.error(msg),
                    None => Diagnostic::new(path, 1, msg),
                });
                return;
            }
        };
        self.files.push(path.to_path_buf());
        self.content_hash = fnv64(self.content_hash, text.as_bytes());
        let file: Arc<Path> = Arc::from(path);
        each_entry(&text, |entry| {
            let loc = Loc {
                file: file.clone(),
                line: entry.line,
            };
            if let Err(msg) = self.entry(&entry, &mut origin, &loc, depth) {
                self.errors.push(loc.error(msg));
            }
        });
    }

    fn entry(
        &mut self,
        e: &Entry<'_>,
        origin: &mut Name,
        loc: &Loc,
        depth: usize,
    ) -> Result<(), String> {
        let tok = |i: usize| e.tokens.get(i).map(|&(s, end)| &e.text[s..end]);
        let Some(first) = tok(0) else { return Ok(()) };
        if !e.blank_owner && first.starts_with('$') {
            let arg = |i: usize| tok(i).ok_or_else(|| format!("{first} needs an argument"));
            match first.to_ascii_uppercase().as_str() {
                "$ORIGIN" => *origin = parse_name(arg(1)?, origin)?,
                "$TTL" => match parse_ttl_value(arg(1)?) {
                    Ok(ttl) => self.default_ttl = Some(ttl),
                    Err(e) => {
                        // One error, not one per record after it: the zone
                        // is rejected anyway, so a placeholder lets the rest
                        // of the file be checked for errors of its own.
                        self.default_ttl = Some(0);
                        return Err(e);
                    }
                },
                "$INCLUDE" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(format!(
                            "$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} files"
                        ));
                    }
                    let target = unquote(arg(1)?);
                    let base = loc.file.parent().unwrap_or(Path::new(""));
                    let path = base.join(target);
                    let inner_origin = match tok(2) {
                        Some(o) => parse_name(o, origin)?,
                        None => origin.clone(),
                    };
                    // RFC 1035 5.1: the origin change inside the included
                    // file does not leak back; `file` works on a copy.
                    self.file(&path, inner_origin, Some(loc), depth + 1);
                }
                other => return Err(format!("unsupported directive {other}")),
            }
            return Ok(());
        }

        let mut i = 0;
        let owner = if e.blank_owner {
            self.last_owner
                .clone()
                .ok_or("record has no owner name and there is no previous one")?
        } else {
            i = 1;
            if first == "@" {
                origin.clone()
            } else {
                parse_name(first, origin)?
            }
        };
        // The next blank owner means this one, even if this record fails.
        self.last_owner = Some(owner.clone());
        let mut ttl = None;
        let mut class = None;
        let rtype_at = loop {
            let t = tok(i).ok_or("record has no type")?;
            if ttl.is_none()
                && t.len() > 1
                && t.starts_with('-')
                && t[1..].bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!("TTL {t} is negative"));
            }
            if ttl.is_none() && t.as_bytes()[0].is_ascii_digit() {
                ttl = Some(parse_ttl_value(t)?);
            } else if class.is_none() && DNSClass::from_str(&t.to_ascii_uppercase()).is_ok() {
                class = Some(t.to_ascii_uppercase());
            } else {
                break i;
            }
            i += 1;
        };
        if let Some(c) = class.as_deref().filter(|c| *c != "IN") {
            return Err(format!("class {c} is not served (only IN)"));
        }
        let type_text = tok(rtype_at).expect("checked above");
        let rtype = RecordType::from_str(&type_text.to_ascii_uppercase())
            .map_err(|_| format!("unknown record type `{type_text}`"))?;
        if matches!(
            rtype,
            RecordType::OPT
                | RecordType::TSIG
                | RecordType::AXFR
                | RecordType::IXFR
                | RecordType::ANY
        ) {
            return Err(format!(
                "{rtype} is not a record type that can appear in a zone file"
            ));
        }
        let ttl = ttl
            .or(self.default_ttl)
            .or(self.last_ttl)
            .ok_or("record has no TTL and no $TTL is set before it")?;
        let rdata_text = &e.text[e.tokens[rtype_at].0..];
        let record = match address_record(&owner, ttl, rtype, &e.tokens[rtype_at + 1..], e.text) {
            Some(r) => r,
            None => parse_record(&owner, ttl, rdata_text, origin)
                .map_err(|m| format!("bad {rtype} record: {m}"))?,
        };
        self.last_ttl = Some(ttl);
        (self.sink)(record, loc.clone());
        Ok(())
    }
}

/// A and AAAA records, the bulk of large zones, parsed directly (a
/// hickory parser per record costs several microseconds). `None` for
/// anything else, and for anything unusual, which then takes the general
/// path with its diagnostics.
fn address_record(
    owner: &Name,
    ttl: u32,
    rtype: RecordType,
    rdata: &[(usize, usize)],
    text: &str,
) -> Option<Record> {
    let [(s, e)] = rdata else { return None };
    let value = &text[*s..*e];
    let data = match rtype {
        RecordType::A => RData::A(A(value.parse().ok()?)),
        RecordType::AAAA => RData::AAAA(AAAA(value.parse().ok()?)),
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), ttl, data))
}

/// Parses one record whose owner and TTL are already known, using
/// hickory's RDATA parsers.
pub fn parse_record(
    owner: &Name,
    ttl: u32,
    type_and_rdata: &str,
    origin: &Name,
) -> Result<Record, String> {
    let text = format!("$ORIGIN {origin}\n{owner} {ttl} IN {type_and_rdata}\n");
    let (_, map) = Parser::new(text, None, Some(origin.clone()))
        .parse()
        .map_err(|e| e.to_string())?;
    let set = map.into_values().next().ok_or("no record parsed")?;
    set.records_without_rrsigs()
        .next()
        .cloned()
        .ok_or_else(|| "no record parsed".to_string())
}

fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    let mut name =
        Name::parse(text, Some(origin)).map_err(|e| format!("bad name `{text}`: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

fn parse_ttl_value(text: &str) -> Result<u32, String> {
    let ttl = parse_ttl(text).map_err(|_| format!("bad TTL `{text}`"))?;
    if ttl > i32::MAX as u32 {
        return Err(format!("TTL {ttl} is above 2^31-1 (RFC 2181)"));
    }
    Ok(ttl)
}

fn unquote(t: &str) -> &str {
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
}

/// One logical entry: a line, or several joined by parentheses.
#[derive(Debug)]
struct Entry<'a> {
    line: usize,
    text: &'a str,
    /// Starts with blank space: the owner is the previous record's.
    blank_owner: bool,
    /// Token byte ranges in `text` (parentheses and comments removed).
    tokens: Vec<(usize, usize)>,
}

/// Splits a master file into logical entries. Newlines inside parentheses
/// or quotes continue an entry; `;` starts a comment outside quotes.
#[cfg(test)]
fn entries(text: &str) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    each_entry(text, |e| out.push(e));
    out
}

/// Hands each logical entry of a master file to `out` as it is found (a
/// large file is not held as a list of entries besides its text).
fn each_entry<'t>(text: &'t str, mut out: impl FnMut(Entry<'t>)) {
    let b = text.as_bytes();
    let (mut start, mut line, mut start_line) = (0, 1, 1);
    let (mut depth, mut quoted, mut comment) = (0usize, false, false);
    let mut i = 0;
    while i <= b.len() {
        let c = b.get(i).copied();
        match c {
            Some(b'\\') if !comment => i += 1,
            Some(b'"') if !comment => quoted = !quoted,
            Some(b';') if !quoted => comment = true,
            Some(b'(') if !quoted && !comment => depth += 1,
            Some(b')') if !quoted && !comment => depth = depth.saturating_sub(1),
            Some(b'\n') | None => {
                comment = false;
                if c.is_none() || (depth == 0 && !quoted) {
                    let t = &text[start..i.min(b.len())];
                    let t = t.strip_suffix('\r').unwrap_or(t);
                    let tokens = tokens(t);
                    if !tokens.is_empty() {
                        let blank_owner = t.starts_with([' ', '\t']);
                        out(Entry {
                            line: start_line,
                            text: t,
                            blank_owner,
                            tokens,
                        });
                    }
                    start = i + 1;
                    start_line = line + 1;
                }
                line += 1;
            }
            _ => {}
        }
        i += 1;
    }
}

fn tokens(t: &str) -> Vec<(usize, usize)> {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' => i += 1,
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let s = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push((s, i));
            }
            _ => {
                let s = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';' | b'"'
                    )
                {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = i.min(b.len());
                out.push((s, i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn entries_join_parentheses() {
        let e = entries(
            "a 1 IN A 1.2.3.4\n@ SOA ns h ( 1 ; serial\n 2 3\n 4 5 )\n; only a comment\n\tTXT \"x ; y\"\n",
        );
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].line, e[1].line, e[2].line), (1, 2, 6));
        assert_eq!(e[1].tokens.len(), 9);
        assert!(e[2].blank_owner);
        assert_eq!(&e[2].text[e[2].tokens[1].0..e[2].tokens[1].1], "\"x ; y\"");
    }

    #[test]
    fn reads_records_with_inheritance_and_include() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "inc.zone",
            "inc A 10.0.0.1\n$ORIGIN sub.example.test.\ndeep A 10.0.0.2\n",
        );
        let main = write(
            dir.path(),
            "main.zone",
            "$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n  IN NS ns1\nns1 600 A 192.0.2.1\n    AAAA 2001:db8::1\n$INCLUDE inc.zone\nafter A 192.0.2.9\n",
        );
        let z = read_file(&main, &origin()).unwrap();
        let names: Vec<String> = z
            .records
            .iter()
            .map(|(r, _)| format!("{} {} {}", r.name, r.ttl, r.record_type()))
            .collect();
        assert_eq!(
            names,
            [
                "example.test. 300 SOA",
                "example.test. 300 NS",
                "ns1.example.test. 600 A",
                "ns1.example.test. 300 AAAA",
                "inc.example.test. 300 A",
                "deep.sub.example.test. 300 A",
                "after.example.test. 300 A",
            ]
        );
        assert_eq!(z.files.len(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "inc.zone", "ok A 10.0.0.1\nbad A 10.0.0.300\n");
        let main = write(
            dir.path(),
            "main.zone",
            "$TTL 300\n@ SOA ns1 hostmaster 1 2 3 4 5\nwww A 1.2.3\n$INCLUDE inc.zone\nx BOGUS foo\n",
        );
        let errs = read_file(&main, &origin()).unwrap_err().0;
        let lines: Vec<(String, usize)> = errs
            .iter()
            .map(|d| {
                (
                    d.file.file_name().unwrap().to_string_lossy().into_owned(),
                    d.line,
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("main.zone".into(), 3),
                ("inc.zone".into(), 2),
                ("main.zone".into(), 5)
            ]
        );
        assert!(errs[0].message.starts_with("bad A record"), "{}", errs[0]);
        assert!(
            errs[2].message.contains("unknown record type `BOGUS`"),
            "{}",
            errs[2]
        );
    }
}
