//! Deciding a file's type from its content alone. The name and the client's
//! `Content-Type` are never consulted: the bytes are matched against magic numbers
//! (`infer`), zip archives are told apart by the names of their entries, and text must be
//! clean UTF-8 that does not look like markup a browser would render. Everything not on
//! the whitelist is refused, with executables and markup named in the refusal.

use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};

/// A whitelisted type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    pub mime: &'static str,
    /// Extension of the stored name.
    pub ext: &'static str,
}

impl Detected {
    const fn new(mime: &'static str, ext: &'static str) -> Detected {
        Detected { mime, ext }
    }

    /// Whether browsers may show it in place (images, audio, video); the rest downloads.
    pub fn inline(mime: &str) -> bool {
        mime.starts_with("image/") || mime.starts_with("audio/") || mime.starts_with("video/")
    }
}

pub const PNG: Detected = Detected::new("image/png", "png");
pub const JPEG: Detected = Detected::new("image/jpeg", "jpg");
pub const GIF: Detected = Detected::new("image/gif", "gif");
pub const WEBP: Detected = Detected::new("image/webp", "webp");
pub const PDF: Detected = Detected::new("application/pdf", "pdf");
pub const DOCX: Detected =
    Detected::new("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx");
pub const XLSX: Detected = Detected::new("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx");
pub const PPTX: Detected =
    Detected::new("application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx");
pub const ODT: Detected = Detected::new("application/vnd.oasis.opendocument.text", "odt");
pub const ODS: Detected = Detected::new("application/vnd.oasis.opendocument.spreadsheet", "ods");
pub const ODP: Detected = Detected::new("application/vnd.oasis.opendocument.presentation", "odp");
pub const ZIP: Detected = Detected::new("application/zip", "zip");
pub const TEXT: Detected = Detected::new("text/plain; charset=utf-8", "txt");
pub const MP3: Detected = Detected::new("audio/mpeg", "mp3");
pub const OGG: Detected = Detected::new("audio/ogg", "ogg");
pub const WAV: Detected = Detected::new("audio/wav", "wav");
pub const M4A: Detected = Detected::new("audio/mp4", "m4a");
pub const MP4: Detected = Detected::new("video/mp4", "mp4");
pub const WEBM: Detected = Detected::new("video/webm", "webm");

/// Every extension a stored name can have.
pub const EXTENSIONS: &[&str] = &[
    "png", "jpg", "gif", "webp", "pdf", "docx", "xlsx", "pptx", "odt", "ods", "odp", "zip", "txt", "mp3", "ogg", "wav",
    "m4a", "mp4", "webm",
];

/// How much of the start of a file the magic-number matchers and the markup check see.
const HEAD: usize = 64 * 1024;

/// Decides the type of a complete file, or refuses it.
pub fn detect<R: Read + Seek>(r: &mut R) -> Result<Detected> {
    r.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(HEAD);
    r.by_ref().take(HEAD as u64).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(Error::Invalid("empty_file", "the file is empty".into()));
    }
    if is_executable(&head) {
        return Err(refuse("executables"));
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return zip_kind(r);
    }
    if let Some(t) = infer::get(&head) {
        return match t.mime_type() {
            "image/png" => Ok(PNG),
            "image/jpeg" => Ok(JPEG),
            "image/gif" => Ok(GIF),
            "image/webp" => Ok(WEBP),
            "application/pdf" => Ok(PDF),
            "audio/mpeg" => Ok(MP3),
            "audio/ogg" | "audio/opus" => Ok(OGG),
            "audio/x-wav" => Ok(WAV),
            "audio/m4a" => Ok(M4A),
            "video/mp4" => Ok(MP4),
            "video/webm" => Ok(WEBM),
            "text/html" | "text/xml" => Err(refuse("HTML, SVG and XML files")),
            "text/x-shellscript" | "application/x-executable" | "application/x-mach-binary" => {
                Err(refuse("executables"))
            }
            t if t.contains("portable-executable") => Err(refuse("executables")),
            other => Err(Error::UnsupportedType(format!("files of type {other} cannot be shared"))),
        };
    }
    text_kind(r, &head)
}

fn refuse(what: &str) -> Error {
    Error::UnsupportedType(format!("{what} cannot be shared"))
}

/// ELF, Mach-O (thin and fat) and scripts with a `#!` interpreter line. PE is left to `infer`,
/// which checks more than the two-byte `MZ`.
fn is_executable(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 6] = [
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
    ];
    let text_start = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    MAGICS.iter().any(|m| head.starts_with(m)) || text_start.starts_with(b"#!")
}

/// Plain text: valid UTF-8 throughout, no control characters but tab, CR and LF, and not
/// markup (a browser that ignored our headers would still have nothing to render).
fn text_kind<R: Read + Seek>(r: &mut R, head: &[u8]) -> Result<Detected> {
    let not_text = || refuse("binary files of unknown type");
    if looks_like_markup(head) {
        return Err(refuse("HTML, SVG and XML files"));
    }
    r.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; HEAD];
    let mut carry = 0usize;
    loop {
        let n = r.read(&mut buf[carry..])?;
        if n == 0 {
            return if carry == 0 { Ok(TEXT) } else { Err(not_text()) };
        }
        let filled = carry + n;
        let (valid, rest) = match std::str::from_utf8(&buf[..filled]) {
            Ok(s) => (s, 0),
            // Only a sequence cut at the end of the buffer may continue in the next read.
            Err(e) if e.error_len().is_none() => {
                let upto = e.valid_up_to();
                (std::str::from_utf8(&buf[..upto]).map_err(|_| not_text())?, filled - upto)
            }
            Err(_) => return Err(not_text()),
        };
        if valid.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
            return Err(not_text());
        }
        buf.copy_within(filled - rest..filled, 0);
        carry = rest;
    }
}

/// Text that starts with a tag, or has an active-content tag near the start.
fn looks_like_markup(head: &[u8]) -> bool {
    let s = String::from_utf8_lossy(head);
    let s = s.trim_start_matches('\u{feff}').trim_start();
    if s.starts_with('<') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    ["<html", "<svg", "<script", "<!doctype", "<?xml", "<body", "<iframe", "<object", "<embed"]
        .iter()
        .any(|tag| lower.contains(tag))
}

/// Longest central directory read when telling zip-based formats apart.
const MAX_CENTRAL_DIR: u64 = 4 * 1024 * 1024;

/// Office documents (OOXML, OpenDocument) and plain zip archives.
fn zip_kind<R: Read + Seek>(r: &mut R) -> Result<Detected> {
    let damaged = || Error::UnsupportedType("the zip archive is damaged".into());
    let len = r.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535);
    r.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    r.read_exact(&mut tail)?;
    let eocd =
        (0..tail.len().saturating_sub(21)).rev().find(|&i| tail[i..].starts_with(b"PK\x05\x06")).ok_or_else(damaged)?;
    let e = &tail[eocd..];
    let entries = u16le(e, 10);
    let cd_size = u32le(e, 12) as u64;
    let cd_offset = u32le(e, 16) as u64;
    if entries == 0xFFFF || cd_offset == 0xFFFF_FFFF {
        return Ok(ZIP); // zip64: a plain archive as far as we need to know
    }
    if cd_offset + cd_size > len || cd_size > MAX_CENTRAL_DIR {
        return Err(damaged());
    }
    r.seek(SeekFrom::Start(cd_offset))?;
    let mut cd = vec![0u8; cd_size as usize];
    r.read_exact(&mut cd)?;
    let mut names: Vec<String> = Vec::new();
    let mut mimetype_at = None;
    let mut pos = 0;
    while pos + 46 <= cd.len() && cd[pos..].starts_with(b"PK\x01\x02") {
        let (method, size) = (u16le(&cd, pos + 10), u32le(&cd, pos + 20));
        let (n, x, c) = (u16le(&cd, pos + 28) as usize, u16le(&cd, pos + 30) as usize, u16le(&cd, pos + 32) as usize);
        let local = u32le(&cd, pos + 42) as u64;
        let name = cd.get(pos + 46..pos + 46 + n).ok_or_else(damaged)?;
        let name = String::from_utf8_lossy(name).into_owned();
        if name == "mimetype" && method == 0 && size <= 128 {
            mimetype_at = Some((local, size as usize));
        }
        names.push(name);
        pos += 46 + n + x + c;
    }
    if let Some((local, size)) = mimetype_at {
        let mut header = [0u8; 30];
        r.seek(SeekFrom::Start(local))?;
        r.read_exact(&mut header)?;
        if header.starts_with(b"PK\x03\x04") {
            let skip = u16le(&header, 26) as i64 + u16le(&header, 28) as i64;
            r.seek(SeekFrom::Current(skip))?;
            let mut value = vec![0u8; size];
            r.read_exact(&mut value)?;
            match value.as_slice() {
                b"application/vnd.oasis.opendocument.text" => return Ok(ODT),
                b"application/vnd.oasis.opendocument.spreadsheet" => return Ok(ODS),
                b"application/vnd.oasis.opendocument.presentation" => return Ok(ODP),
                _ => {}
            }
        }
    }
    if names.iter().any(|n| n == "[Content_Types].xml") {
        let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
        if has("word/") {
            return Ok(DOCX);
        }
        if has("xl/") {
            return Ok(XLSX);
        }
        if has("ppt/") {
            return Ok(PPTX);
        }
    }
    Ok(ZIP)
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests;
