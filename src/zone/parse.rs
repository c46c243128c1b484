//! RFC 1035 master-file reader with line numbers.
//!
//! hickory's `Parser` knows every RDATA syntax but reports errors without a
//! location. This module does the file-level work itself (logical entries
//! across parentheses, `$ORIGIN`, `$TTL`, `$INCLUDE file [origin]`, owner
//! and TTL inheritance) and hands each record, made explicit, to hickory's
//! parser. Every error therefore names the file and line of its entry.
//! The common records in their plain forms (the bulk of large zones) are
//! made directly instead, as hickory's parser would make them (see
//! `plain_record`); anything unusual still goes through it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SRV, TXT};
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
    /// [`text_hash`] over the text of every file read, in order: detects
    /// content changes made without a serial change (compared between
    /// loads of one process only).
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

/// FNV-1a's steps over 8-byte words (then the last bytes one by one),
/// continuing from `h`: a zone file's text hashed 8 times faster than
/// [`fnv64`] (a step is a multiplication that waits for the previous
/// one). Each step is a bijection of `h` for a given word, so texts of
/// one length that differ in one place never hash alike. A multiplication
/// carries bits only upwards: the shift after it brings a word's high
/// bytes down, or edits confined to them would only reach the hash's top
/// byte (and two of them would hash alike 1 time in 256).
pub fn text_hash(mut h: u64, bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    for w in words {
        h ^= u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = h.wrapping_mul(0x100000001b3);
        h ^= h >> 32;
    }
    fnv64(h, rest)
}

/// Reads the master file at `path` for the zone `origin`. Returns every
/// syntax error found (parsing continues after a bad entry).
pub fn read_file(path: &Path, origin: &Name) -> Result<ParsedFile, Diagnostics> {
    let mut records = Vec::new();
    let (files, content_hash) =
        read_file_into(path, origin, &mut |r, loc| records.push((r, loc.clone())))?;
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
    sink: &mut dyn FnMut(Record, &Loc),
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
    sink: &'s mut dyn FnMut(Record, &Loc),
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
        self.content_hash = text_hash(self.content_hash, text.as_bytes());
        // One location for the file, its line updated per entry: no
        // reference count touched per record.
        let mut loc = Loc {
            file: Arc::from(path),
            line: 0,
        };
        each_entry(&text, |entry| {
            loc.line = entry.line;
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
            } else if class.is_none() && t.eq_ignore_ascii_case("IN") {
                class = Some(Cow::Borrowed("IN"));
            } else if class.is_none()
                && common_type(t).is_none()
                && DNSClass::from_str(&t.to_ascii_uppercase()).is_ok()
            {
                class = Some(Cow::Owned(t.to_ascii_uppercase()));
            } else {
                break i;
            }
            i += 1;
        };
        if let Some(c) = class.as_deref().filter(|c| *c != "IN") {
            return Err(format!("class {c} is not served (only IN)"));
        }
        let type_text = tok(rtype_at).expect("checked above");
        let rtype = match common_type(type_text) {
            Some(t) => t,
            None => RecordType::from_str(&type_text.to_ascii_uppercase())
                .map_err(|_| format!("unknown record type `{type_text}`"))?,
        };
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
        let record = match plain_record(
            &owner,
            ttl,
            rtype,
            &e.tokens[rtype_at + 1..],
            e.text,
            origin,
        ) {
            Some(r) => r,
            None => {
                // The tokens, not the text: hickory's lexer keeps the
                // quotes of strings inside parentheses as data (`TXT (
                // "a" )` would be `"a"`, three bytes).
                let fields: Vec<&str> = e.tokens[rtype_at..]
                    .iter()
                    .map(|&(s, end)| &e.text[s..end])
                    .collect();
                parse_record(&owner, ttl, &fields.join(" "), origin)
                    .map_err(|m| format!("bad {rtype} record: {m}"))?
            }
        };
        self.last_ttl = Some(ttl);
        (self.sink)(record, loc);
        Ok(())
    }
}

/// The type named `t` (in any case) if it is one of the common ones: no
/// uppercase copy of every record's type and class to look them up.
fn common_type(t: &str) -> Option<RecordType> {
    use RecordType::*;
    [A, AAAA, TXT, MX, CNAME, NS, PTR, SRV, SOA]
        .into_iter()
        .find(|r| t.eq_ignore_ascii_case(<&str>::from(*r)))
}

/// The records of large zones (A, AAAA, TXT, MX, CNAME, NS, PTR, SRV)
/// in their plain forms, parsed directly: a hickory parser per record
/// costs several microseconds. The result is the record hickory's parser
/// makes of the same text (tests compare them). `None` for any other
/// type and for anything unusual (escapes, non-ASCII text, names that are
/// not plain host names, a wrong number of fields), which then takes the
/// general path with its diagnostics.
fn plain_record(
    owner: &Name,
    ttl: u32,
    rtype: RecordType,
    rdata: &[(usize, usize)],
    text: &str,
    origin: &Name,
) -> Option<Record> {
    let field = |&(s, e): &(usize, usize)| &text[s..e];
    let data = match (rtype, rdata) {
        (RecordType::A, [v]) => RData::A(A(field(v).parse().ok()?)),
        (RecordType::AAAA, [v]) => RData::AAAA(AAAA(field(v).parse().ok()?)),
        (RecordType::CNAME, [v]) => RData::CNAME(CNAME(plain_name(field(v), origin)?)),
        (RecordType::NS, [v]) => RData::NS(NS(plain_name(field(v), origin)?)),
        (RecordType::PTR, [v]) => RData::PTR(PTR(plain_name(field(v), origin)?)),
        (RecordType::MX, [p, x]) => RData::MX(MX::new(
            field(p).parse().ok()?,
            plain_name(field(x), origin)?,
        )),
        (RecordType::SRV, [p, w, port, t]) => RData::SRV(SRV::new(
            field(p).parse().ok()?,
            field(w).parse().ok()?,
            field(port).parse().ok()?,
            plain_name(field(t), origin)?,
        )),
        (RecordType::TXT, [_, ..]) => {
            let strings = rdata.iter().map(|v| {
                let s = field(v).strip_prefix('"')?.strip_suffix('"')?;
                // Printable ASCII without escapes reads as itself.
                s.bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
                    .then(|| s.to_string())
            });
            RData::TXT(TXT::new(strings.collect::<Option<Vec<_>>>()?))
        }
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), ttl, data))
}

/// `Name::parse(text, Some(origin))` as an absolute name, for plain host
/// names: labels of letters, digits and inner hyphens (lowercased, as
/// hickory's IDNA mapping does), `*`, or `_` labels (kept as written).
/// `None` for anything else (escapes, `@`, the root, non-ASCII, `xn--`
/// labels), which the general parser then judges.
fn plain_name(text: &str, origin: &Name) -> Option<Name> {
    let b = text.as_bytes();
    let (body, absolute) = match b.strip_suffix(b".") {
        Some(body) => (body, true),
        None => (b, false),
    };
    if body.is_empty() {
        return None;
    }
    let mut name = Name::new();
    let mut buf = [0u8; 63];
    for label in body.split(|&c| c == b'.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        let raw = match label {
            [b'*'] => label,
            [b'_', rest @ ..] => {
                if !rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
                {
                    return None;
                }
                label
            }
            _ => {
                let plain = label[0].is_ascii_alphanumeric()
                    && label
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                    && !(label.len() >= 4 && label[..4].eq_ignore_ascii_case(b"xn--"));
                if !plain {
                    return None;
                }
                let lower = &mut buf[..label.len()];
                lower.copy_from_slice(label);
                lower.make_ascii_lowercase();
                lower
            }
        };
        name = name.append_label(raw).ok()?;
    }
    if absolute {
        name.set_fqdn(true);
        Some(name)
    } else {
        name.append_domain(origin).ok()
    }
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
    if let Some(name) = plain_name(text, origin) {
        return Ok(name);
    }
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
    tokens: Tokens,
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

/// Token byte ranges, inline for most records (no allocation per line).
type Tokens = smallvec::SmallVec<[(usize, usize); 8]>;

fn tokens(t: &str) -> Tokens {
    let b = t.as_bytes();
    let mut out = Tokens::new();
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

    /// The record as hickory's encoder writes it (names as written, not
    /// lowercased), and as text: what must not differ between parsers.
    fn exact(r: &Record) -> (Vec<u8>, String) {
        use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
        let mut buf = Vec::new();
        r.emit(&mut BinEncoder::new(&mut buf)).unwrap();
        (buf, r.to_string())
    }

    /// The direct parser makes hickory's record, or leaves it to hickory.
    fn same_as_hickory(owner: &Name, rtype: &str, rdata: &str) -> bool {
        let origin = origin();
        let line = format!("{rtype} {rdata}");
        let toks = tokens(&line);
        let rtype = RecordType::from_str(rtype).unwrap();
        let slow = parse_record(owner, 300, &line, &origin);
        match plain_record(owner, 300, rtype, &toks[1..], &line, &origin) {
            Some(fast) => {
                let slow = slow.unwrap_or_else(|e| panic!("{line}: hickory refuses it: {e}"));
                assert_eq!(fast, slow, "{line}");
                assert_eq!(exact(&fast), exact(&slow), "{line}");
                true
            }
            None => false,
        }
    }

    /// Edits confined to the last byte of 8-byte words (two digits of a
    /// zone's addresses that happen to fall there) must still change the
    /// hash: a plain multiplication carries a word's high bits nowhere
    /// below them, so such edits once hashed alike 1 time in 256.
    #[test]
    fn edits_in_the_high_bytes_of_words_change_the_text_hash() {
        let records = |a: u32, b: u32| {
            let mut t =
                "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n".to_string();
            for i in 10..40 {
                let last = match i {
                    12 => a,
                    36 => b,
                    _ => i,
                };
                t.push_str(&format!("h{i} A 192.0.2.{last}\n"));
            }
            t
        };
        let (before, after) = (records(12, 36), records(15, 33));
        assert_eq!(before.len(), after.len());
        assert_ne!(
            text_hash(FNV_START, before.as_bytes()),
            text_hash(FNV_START, after.as_bytes()),
            "two edited addresses, one hash"
        );
        let mut rng = fastrand::Rng::with_seed(7);
        let text: Vec<u8> = (0..4096).map(|_| rng.u8(b' '..=b'~')).collect();
        let h = text_hash(FNV_START, &text);
        let mut same = 0;
        for _ in 0..20_000 {
            let mut t = text.clone();
            for _ in 0..2 {
                let at = rng.usize(..text.len() / 8) * 8 + 7;
                t[at] = rng.u8(b' '..=b'~');
            }
            if t != text && text_hash(FNV_START, &t) == h {
                same += 1;
            }
        }
        assert_eq!(same, 0, "edits in the words' high bytes hashed alike");
    }

    #[test]
    fn any_one_change_changes_the_text_hash() {
        let text: Vec<u8> = (0..100u8).collect();
        let h = text_hash(FNV_START, &text);
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut t = text.clone();
                t[i] ^= 1 << bit;
                assert_ne!(text_hash(FNV_START, &t), h, "byte {i} bit {bit}");
            }
        }
        assert_ne!(text_hash(FNV_START, &text[..99]), h);
    }

    #[test]
    fn common_types_are_hickorys() {
        for t in ["A", "aaaa", "Txt", "mX", "CNAME", "ns", "PTR", "srv", "SOA"] {
            let upper = t.to_ascii_uppercase();
            assert_eq!(common_type(t), RecordType::from_str(&upper).ok(), "{t}");
            assert!(DNSClass::from_str(&upper).is_err(), "{t} is a class too");
        }
        assert_eq!(common_type("CAA"), None);
        assert_eq!(common_type("IN"), None);
    }

    #[test]
    fn plain_names_are_hickorys() {
        let origin = origin();
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let huge = [long.as_str(); 5].join(".");
        let cases = [
            "www",
            "WWW.Example",
            "h1.sub",
            "a-b",
            "a--b",
            "ab-",
            "0",
            "9ab",
            "*",
            "*.w",
            "_sip._tcp",
            "_SIP._Tcp.x",
            "_",
            "__x",
            "host.example.org.",
            "Host.EXAMPLE.org.",
            &long,
            &too_long,
            &huge,
            "-a",
            "a_b",
            "xn--bcher-kva",
            "XN--bcher-kva",
            "xn-a",
            "a..b",
            ".",
            "..",
            "",
            "@",
            "a\\.b",
            "a\\065",
            "b\u{fc}cher",
            "a*",
            "*a",
            "a/b",
            ".a",
            "a.b..",
            "a b",
        ];
        for text in cases {
            let fast = plain_name(text, &origin);
            let slow = Name::parse(text, Some(&origin)).map(|mut n| {
                n.set_fqdn(true);
                n
            });
            if let Some(fast) = fast {
                let slow = slow.unwrap_or_else(|e| panic!("{text:?}: hickory refuses it: {e}"));
                assert!(fast.eq_case(&slow), "{text:?}: {fast} vs {slow}");
                assert_eq!(fast.is_fqdn(), slow.is_fqdn(), "{text:?}");
            }
        }
        for plain in [
            "www",
            "WWW.Example",
            "_sip._tcp",
            "*",
            &long,
            "host.example.org.",
        ] {
            assert!(plain_name(plain, &origin).is_some(), "{plain:?}");
        }
    }

    #[test]
    fn direct_records_are_hickorys() {
        let owner = Name::from_ascii("h1.example.test.").unwrap();
        let plain = [
            ("A", "192.0.2.1"),
            ("AAAA", "2001:db8::1"),
            ("AAAA", "::ffff:192.0.2.1"),
            ("TXT", "\"v=spf1 -all\""),
            ("TXT", "\"a\" \"b c\" \"\""),
            ("TXT", "\"\""),
            ("MX", "10 mail"),
            ("MX", "0 Mail.Example.org."),
            ("MX", "65535 m"),
            ("CNAME", "target"),
            ("CNAME", "t.example.org."),
            ("NS", "ns1"),
            ("PTR", "host.example.org."),
            ("SRV", "10 60 5060 sip"),
            ("SRV", "0 0 0 _x.y."),
        ];
        for (t, d) in plain {
            assert!(
                same_as_hickory(&owner, t, d),
                "{t} {d}: not parsed directly"
            );
        }
        // Left to hickory (which may accept or refuse them).
        let general = [
            ("A", "1.2.3"),
            ("A", "1.2.3.4 5"),
            ("TXT", "unquoted"),
            ("TXT", "\"with \\\" escape\""),
            ("TXT", "\"tab\there\""),
            ("TXT", "\"unterminated"),
            ("TXT", "\"a\"b"),
            ("TXT", "\"caf\u{e9}\""),
            ("MX", "10"),
            ("MX", "x mail"),
            ("MX", "65536 mail"),
            ("MX", "10 @"),
            ("MX", "10 a b"),
            ("CNAME", "a\\.b"),
            ("CNAME", "."),
            ("SRV", "1 2 3"),
            ("NS", "-bad"),
        ];
        for (t, d) in general {
            assert!(!same_as_hickory(&owner, t, d), "{t} {d}: parsed directly");
        }
    }

    #[test]
    fn direct_records_match_hickory_on_a_generated_corpus() {
        let mut rng = fastrand::Rng::with_seed(18);
        let alnum: Vec<char> = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*."
            .chars()
            .collect();
        let printable: Vec<char> = (b' '..=b'~').map(char::from).collect();
        let word = |rng: &mut fastrand::Rng, set: &[char], max: usize| -> String {
            (0..rng.usize(1..=max))
                .map(|_| set[rng.usize(..set.len())])
                .collect()
        };
        let mut direct = 0;
        for i in 0..20_000 {
            let owner_text = word(&mut rng, &alnum, 12);
            let Ok(owner) = parse_name(&owner_text, &origin()) else {
                continue;
            };
            let name = word(&mut rng, &alnum, 20);
            let (t, d) = match i % 8 {
                0 => (
                    "A",
                    format!(
                        "{}.{}.{}.{}",
                        rng.u16(..300),
                        rng.u8(..),
                        rng.u8(..),
                        rng.u8(..)
                    ),
                ),
                1 => (
                    "AAAA",
                    format!("2001:db8::{:x}:{:x}", rng.u16(..), rng.u32(..0x1_ffff)),
                ),
                2 => {
                    let n = rng.usize(1..4);
                    let s: Vec<String> = (0..n)
                        .map(|_| format!("\"{}\"", word(&mut rng, &printable, 40).replace('"', "")))
                        .collect();
                    ("TXT", s.join(" "))
                }
                3 => ("MX", format!("{} {name}", rng.u32(..70_000))),
                4 => ("CNAME", name),
                5 => ("NS", name),
                6 => ("PTR", name),
                _ => (
                    "SRV",
                    format!(
                        "{} {} {} {name}",
                        rng.u16(..),
                        rng.u16(..),
                        rng.u32(..70_000)
                    ),
                ),
            };
            if same_as_hickory(&owner, t, &d) {
                direct += 1;
            }
        }
        // Most of the corpus is plain and takes the direct path.
        assert!(direct > 8_000, "{direct} parsed directly");
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

#[cfg(test)]
mod against_hickory_tests {
    use super::*;

    /// Every record of `text` as hickory's own zone parser makes it, and
    /// as `read_file` does (with the names' case), sorted.
    fn both(text: &str) -> (Vec<String>, Vec<String>) {
        let origin = Name::from_ascii("example.test.").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        std::fs::write(&path, text).unwrap();
        let ours = read_file(&path, &origin).unwrap_or_else(|e| panic!("{e:?}"));
        let mut ours: Vec<String> = ours.records.iter().map(|(r, _)| r.to_string()).collect();
        let (_, map) = Parser::new(text.to_string(), None, Some(origin))
            .parse()
            .unwrap();
        let mut theirs: Vec<String> = map
            .values()
            .flat_map(|s| s.records_without_rrsigs().map(|r| r.to_string()))
            .collect();
        ours.sort();
        theirs.sort();
        (ours, theirs)
    }

    /// (Not TXT strings inside parentheses: hickory's lexer keeps their
    /// quotes, see `quoted_strings_in_parentheses_lose_their_quotes`.)
    #[test]
    fn a_tricky_file_reads_as_hickory_reads_it() {
        let long = "z".repeat(300);
        let text = format!(
            "$ORIGIN example.test.\n$TTL 300\n\
             @ IN SOA ns hostmaster ( 1 2 3\n   4 5 )\n\
             @ NS ns\n\
             ns IN 300 A 192.0.2.1\n\
             Www 300 IN A 192.0.2.2\n\
             \x20   TXT \"a b;c\" \"d(e)\" \"\"\n\
             _Srv._TCP SRV 0 0 0 Target\n\
             m mx 10 Mail.Example.Test.\n\
             m2 MX 10 _Mail.Example.Test.\n\
             c CNAME _Foo.bar\n\
             c2 cname Foo\n\
             $ORIGIN sub.example.test.\n\
             x A 192.0.2.3\n\
             y 60 PTR x\n\
             z NS ns.\n\
             esc TXT \"a\\\"b\" \"c\\\\d\" \"\\065\"\n\
             n\\.dot A 192.0.2.4\n\
             d\\065 A 192.0.2.5\n\
             l TXT \"{long}\"\n\
             t TXT a b \"c d\"\n\
             w IN TXT \"x\"\n\
             w2 in 7 mX 5 A.B.\n\
             *.wild 1 CNAME *.other\n"
        );
        let (ours, theirs) = both(&text);
        assert_eq!(ours, theirs);
    }
}

#[cfg(test)]
mod paren_txt_tests {
    use super::*;

    fn txt_of(text: &str) -> Vec<Vec<u8>> {
        let origin = Name::from_ascii("example.test.").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        std::fs::write(&path, format!("$TTL 300\n{text}\n")).unwrap();
        let z = read_file(&path, &origin).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        match &z.records[0].0.data {
            RData::TXT(t) => t.txt_data.iter().map(|s| s.to_vec()).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// Strings inside parentheses (a DKIM key split over lines) are the
    /// strings, without their quotes, whichever parser makes the record:
    /// hickory's lexer keeps the quotes there.
    #[test]
    fn quoted_strings_in_parentheses_lose_their_quotes() {
        let plain = txt_of("k TXT ( \"v=DKIM1; k=rsa; \"\n  \"p=MIIB\" )");
        assert_eq!(plain, [b"v=DKIM1; k=rsa; ".to_vec(), b"p=MIIB".to_vec()]);
        // An escape sends it to hickory's parser.
        let escaped = txt_of("k TXT ( \"v=DKIM1\\; k=rsa; \"\n  \"p=MIIB\" ) ; key");
        assert_eq!(escaped, [b"v=DKIM1; k=rsa; ".to_vec(), b"p=MIIB".to_vec()]);
        let tab = txt_of("k TXT ( \"a\tb\" \"c\" )");
        assert_eq!(tab, [b"a\tb".to_vec(), b"c".to_vec()]);
    }
}
