use super::*;
use std::io::Cursor;

fn kind(bytes: &[u8]) -> Result<Detected> {
    detect(&mut Cursor::new(bytes))
}

fn refused(bytes: &[u8]) -> String {
    match kind(bytes) {
        Err(e @ Error::UnsupportedType(_)) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A zip of stored (uncompressed) entries, as office suites write their `mimetype`.
pub(crate) fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let mut local = b"PK\x03\x04".to_vec();
        local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date
        local.extend_from_slice(&0u32.to_le_bytes()); // crc (not checked by the detector)
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, method, time, date
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, internal attr, external attr
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn images_and_pdf_are_recognised_by_their_magic_bytes() {
    assert_eq!(kind(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").unwrap(), PNG);
    assert_eq!(kind(b"\xff\xd8\xff\xe0\0\x10JFIF\0").unwrap(), JPEG);
    assert_eq!(kind(b"GIF89a\x01\0\x01\0\0\0\0;").unwrap(), GIF);
    assert_eq!(kind(b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0").unwrap(), WEBP);
    assert_eq!(kind(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n").unwrap(), PDF);
}

#[test]
fn audio_and_video_are_recognised() {
    assert_eq!(kind(b"ID3\x03\0\0\0\0\0\x21TIT2").unwrap(), MP3);
    assert_eq!(kind(b"OggS\0\x02\0\0\0\0\0\0\0\0").unwrap(), OGG);
    assert_eq!(kind(b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0").unwrap(), WAV);
    assert_eq!(kind(b"\0\0\0\x20ftypM4A \0\0\0\0").unwrap(), M4A);
    assert_eq!(kind(b"\0\0\0\x20ftypisom\0\0\x02\0").unwrap(), MP4);
    let mut webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm".to_vec();
    webm.resize(300, 0);
    assert_eq!(kind(&webm).unwrap(), WEBM);
}

#[test]
fn office_documents_are_told_apart_by_their_entries() {
    let docx = zip(&[("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>")]);
    assert_eq!(kind(&docx).unwrap(), DOCX);
    let xlsx = zip(&[("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<x/>")]);
    assert_eq!(kind(&xlsx).unwrap(), XLSX);
    let pptx = zip(&[("[Content_Types].xml", b"<Types/>"), ("ppt/presentation.xml", b"<p/>")]);
    assert_eq!(kind(&pptx).unwrap(), PPTX);
    let odt = zip(&[("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<o/>")]);
    assert_eq!(kind(&odt).unwrap(), ODT);
    let plain = zip(&[("notes.txt", b"hello"), ("word/x.txt", b"no content types")]);
    assert_eq!(kind(&plain).unwrap(), ZIP);
    assert_eq!(kind(&zip(&[])).unwrap(), ZIP);
}

#[test]
fn a_damaged_zip_is_refused() {
    let mut z = zip(&[("a.txt", b"hello")]);
    let n = z.len();
    z[n - 6..n - 2].copy_from_slice(&9999u32.to_le_bytes()); // central directory offset past the end
    refused(&z);
    refused(b"PK\x03\x04 and then nothing that ends a zip");
}

#[test]
fn clean_utf8_text_is_plain_text() {
    assert_eq!(kind(b"hello\tworld\r\n").unwrap(), TEXT);
    assert_eq!(kind("grüße, 日本語 🎉\n".as_bytes()).unwrap(), TEXT);
    assert_eq!(kind("\u{feff}with a byte order mark".as_bytes()).unwrap(), TEXT);
    // A multi-byte character straddling the read buffer boundary.
    let mut long = "a".repeat(HEAD - 1).into_bytes();
    long.extend_from_slice("é and more".as_bytes());
    assert_eq!(kind(&long).unwrap(), TEXT);
}

#[test]
fn binary_or_invalid_text_is_refused() {
    refused(b"hello\0world");
    refused(b"bell\x07");
    refused(b"escape \x1b[31m red");
    refused(b"\xff\xfe not utf8");
    refused("C1 control \u{0085}".as_bytes());
    let mut cut = b"ends mid-character ".to_vec();
    cut.extend_from_slice(&"é".as_bytes()[..1]);
    refused(&cut);
    let mut late = "a".repeat(HEAD + 10).into_bytes();
    late.push(0);
    refused(&late);
}

#[test]
fn markup_is_refused_even_when_it_is_valid_text() {
    for doc in [
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        "  \n<?xml version=\"1.0\"?><svg/>",
        "\u{feff}<!DOCTYPE html><html></html>",
        "<html><body>hi</body></html>",
        "<b>bold</b>",
        "Dear friend, please open <script>alert(1)</script>",
        "hello <SVG onload=alert(1)>",
    ] {
        let e = refused(doc.as_bytes());
        assert!(e.contains("HTML"), "{doc}: {e}");
    }
}

#[test]
fn executables_are_refused_whatever_they_are_called() {
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(128, 0);
    assert!(refused(&elf).contains("executables"));
    assert!(refused(b"\xcf\xfa\xed\xfe\x07\0\0\x01").contains("executables"));
    assert!(refused(b"#!/bin/sh\nrm -rf /\n").contains("executables"));
    assert!(refused(b"\xef\xbb\xbf#!/usr/bin/env python\n").contains("executables"));
    let mut pe = b"MZ\x90\0\x03\0\0\0".to_vec();
    pe.resize(256, 0);
    assert!(refused(&pe).contains("executables"));
}

#[test]
fn other_known_types_are_not_on_the_whitelist() {
    refused(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0"); // BMP
    refused(b"\x1f\x8b\x08\0\0\0\0\0\0\x03"); // gzip
}

#[test]
fn an_empty_file_is_invalid_not_unsupported() {
    assert!(matches!(kind(b""), Err(Error::Invalid("empty_file", _))));
}

#[test]
fn every_detected_extension_is_a_valid_stored_extension() {
    for d in [PNG, JPEG, GIF, WEBP, PDF, DOCX, XLSX, PPTX, ODT, ODS, ODP, ZIP, TEXT, MP3, OGG, WAV, M4A, MP4, WEBM] {
        assert!(EXTENSIONS.contains(&d.ext), "{}", d.ext);
    }
}
