//! A minimal, bounds-checked reader of the zip container PyTorch writes with `torch.save`
//! (APPNOTE.TXT, PKWARE's zip specification: end of central directory, ZIP64 records, central
//! directory headers, local headers). PyTorch stores every entry uncompressed ("stored",
//! method 0), so an entry is a byte range of the file and can be read straight from a memory
//! map; compressed entries are listed but refused when read.
//!
//! Every offset and length read from the file is checked against the file size before use:
//! a truncated or hostile archive is an error, never a panic or an oversized allocation.

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZipEntry {
    /// The member's name (`archive/data.pkl`, `archive/data/0`, ...).
    pub name: String,
    /// Compression method (0 = stored).
    pub method: u16,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Offset of the member's data in the file.
    pub data_start: u64,
}

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn to_usize(v: u64, what: &str, limit: usize) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= limit)
        .ok_or_else(|| format!("{what} {v} lies beyond the end of the file ({limit} bytes)"))
}

/// Lists the members of the zip archive `bytes`.
pub(crate) fn entries(bytes: &[u8]) -> Result<Vec<ZipEntry>, String> {
    let len = bytes.len();
    if len < 22 {
        return Err("too short for a zip archive".into());
    }
    // The end-of-central-directory record: the last 22 bytes, or earlier when a comment follows.
    let lowest = len.saturating_sub(22 + 0xffff);
    let eocd = (lowest..=len - 22)
        .rev()
        .find(|&at| u32_at(bytes, at) == Ok(EOCD))
        .ok_or("no end-of-central-directory record: not a zip archive")?;
    let mut count = u16_at(bytes, eocd + 10)? as u64;
    let mut cd_size = u32_at(bytes, eocd + 12)? as u64;
    let mut cd_offset = u32_at(bytes, eocd + 16)? as u64;
    if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        let locator = eocd
            .checked_sub(20)
            .filter(|&at| u32_at(bytes, at) == Ok(ZIP64_LOCATOR))
            .ok_or("ZIP64 sizes without a ZIP64 locator")?;
        let record = to_usize(u64_at(bytes, locator + 8)?, "ZIP64 record offset", len)?;
        if u32_at(bytes, record)? != ZIP64_EOCD {
            return Err(format!(
                "no ZIP64 end-of-central-directory record at byte {record}"
            ));
        }
        count = u64_at(bytes, record + 32)?;
        cd_size = u64_at(bytes, record + 40)?;
        cd_offset = u64_at(bytes, record + 48)?;
    }
    let start = to_usize(cd_offset, "central directory offset", len)?;
    let end = to_usize(
        cd_offset.saturating_add(cd_size),
        "central directory end",
        len,
    )?;
    // Each central header takes at least 46 bytes: a count beyond that is a lie.
    if count > ((end - start) / 46) as u64 {
        return Err(format!(
            "the central directory claims {count} entries but has room for {}",
            (end - start) / 46
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut at = start;
    for i in 0..count {
        if u32_at(bytes, at)? != CENTRAL {
            return Err(format!(
                "central directory entry {i} at byte {at} has a bad signature"
            ));
        }
        let method = u16_at(bytes, at + 10)?;
        let mut size = u32_at(bytes, at + 24)? as u64;
        let compressed32 = u32_at(bytes, at + 20)?;
        let name_len = u16_at(bytes, at + 28)? as usize;
        let extra_len = u16_at(bytes, at + 30)? as usize;
        let comment_len = u16_at(bytes, at + 32)? as usize;
        let mut local = u32_at(bytes, at + 42)? as u64;
        let name_bytes = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| format!("central directory entry {i}: name runs past the end"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        let extra = bytes
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(|| format!("{name}: extra field runs past the end"))?;
        // ZIP64 extended information: the 8-byte values replace the saturated 4-byte ones,
        // in this order, only for the fields that are saturated.
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e)?;
            let n = u16_at(extra, e + 2)? as usize;
            let body = extra
                .get(e + 4..e + 4 + n)
                .ok_or_else(|| format!("{name}: extra field runs past its record"))?;
            if id == 1 {
                let mut p = 0;
                if size == 0xffff_ffff {
                    size = u64_at(body, p)?;
                    p += 8;
                }
                if compressed32 == 0xffff_ffff {
                    p += 8;
                }
                if local == 0xffff_ffff {
                    local = u64_at(body, p)?;
                }
            }
            e += 4 + n;
        }
        let local_at = to_usize(local, &format!("{name}: local header offset"), len)?;
        if u32_at(bytes, local_at)? != LOCAL {
            return Err(format!("{name}: no local header at byte {local_at}"));
        }
        let data_start = local_at as u64
            + 30
            + u16_at(bytes, local_at + 26)? as u64
            + u16_at(bytes, local_at + 28)? as u64;
        if method == 0 && data_start.saturating_add(size) > len as u64 {
            return Err(format!(
                "{name}: {size} bytes at byte {data_start} run past the end of the file ({len} bytes)"
            ));
        }
        out.push(ZipEntry {
            name,
            method,
            size,
            data_start,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored-only archive with the given members (what `torch.save` writes, minus alignment).
    pub(crate) fn write_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in members {
            let offset = out.len() as u32;
            out.extend_from_slice(&LOCAL.to_le_bytes());
            out.extend_from_slice(&[0u8; 14]);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&CENTRAL.to_le_bytes());
            central.extend_from_slice(&[0u8; 16]);
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0u8; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn lists_members_and_their_data() {
        let zip = write_zip(&[("a/data.pkl", b"xyz"), ("a/data/0", &[1, 2, 3, 4])]);
        let e = entries(&zip).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].name, "a/data/0");
        let s = e[1].data_start as usize;
        assert_eq!(&zip[s..s + 4], &[1, 2, 3, 4]);
    }

    #[test]
    fn truncation_and_lies_are_errors() {
        let zip = write_zip(&[("a/data.pkl", b"xyz")]);
        for cut in 0..zip.len() {
            assert!(entries(&zip[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = zip.clone();
        let n = lying.len();
        lying[n - 12..n - 10].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(entries(&lying).unwrap_err().contains("claims"));
    }
}
