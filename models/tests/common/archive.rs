//! Small `.tar.gz` archives for the fetch tests, including malformed ones.
#![allow(dead_code)]

use md5::{Digest, Md5};

/// One archive member.
pub enum Member<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// A gzipped tar of `members`. Names are written raw into the header, so paths the tar
/// crate would refuse to build (`../x`, `/etc/x`) can be tested too.
pub fn tar_gz(members: &[Member]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for member in members {
        let mut header = tar::Header::new_old();
        let (name, data, kind): (&str, &[u8], tar::EntryType) = match member {
            Member::Dir(n) => (n, b"", tar::EntryType::Directory),
            Member::File(n, d) => (n, d, tar::EntryType::Regular),
            Member::Symlink(n, target) => {
                header.set_link_name(target).unwrap();
                (n, b"", tar::EntryType::Symlink)
            }
        };
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes of a CIFAR-10 binary file of `records` records: label `(i * 7 + 3) % 10` and
/// pixel byte `b` = `(i * 31 + b * 7) % 251` for global record `first + i` (the same
/// formulas as `common::write_records`).
pub fn cifar10_records(first: usize, records: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(records * 3073);
    for index in first..first + records {
        bytes.push(((index * 7 + 3) % 10) as u8);
        bytes.extend((0..3072).map(|b| ((index * 31 + b * 7) % 251) as u8));
    }
    bytes
}

/// A CIFAR-10 binary archive with `per_file` records in each of the six files.
pub fn small_cifar10(per_file: usize) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|k| {
            let name = if k < 5 {
                format!("cifar-10-batches-bin/data_batch_{}.bin", k + 1)
            } else {
                "cifar-10-batches-bin/test_batch.bin".to_string()
            };
            (name, cifar10_records(k * per_file, per_file))
        })
        .collect();
    let mut members = vec![Member::Dir("cifar-10-batches-bin/")];
    members.extend(files.iter().map(|(n, d)| Member::File(n, d)));
    members.push(Member::File(
        "cifar-10-batches-bin/batches.meta.txt",
        b"airplane\n",
    ));
    tar_gz(&members)
}
