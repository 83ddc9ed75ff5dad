//! PostgreSQL types: their common names, and values decoded from and encoded to the
//! binary wire format.
//!
//! sqlx asks for every result column in binary format. Decoding the bytes here, by type OID,
//! rather than through sqlx's typed decoders keeps values exact where those decoders would
//! fail or round: numeric `NaN` and precision past 28 digits, `infinity` dates and
//! timestamps, `24:00:00`, intervals, nested arrays. Parameters go the other way: the
//! server infers each parameter's type when the statement is prepared, and the JSON value
//! is encoded to exactly that type, so `WHERE name = $1` with `1` binds the text `1`.

use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Timelike};
use plugboard_connector::{CommonType, Value};

/// Type OIDs from `pg_type.dat`; stable across PostgreSQL versions.
pub(crate) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const MACADDR8: u32 = 774;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The common type of a PostgreSQL type, by OID; `category` is `pg_type.typcategory`
/// (`A` array, `E` enum), which tells apart the types that have no fixed OID.
pub(crate) fn common_type(type_oid: u32, category: Option<char>) -> CommonType {
    use CommonType as C;
    match type_oid {
        oid::BOOL => C::Boolean,
        oid::BYTEA => C::Binary,
        oid::CHAR | oid::NAME | oid::TEXT | oid::XML | oid::BPCHAR | oid::VARCHAR => C::Text,
        oid::UNKNOWN | oid::INET | oid::CIDR | oid::MACADDR | oid::MACADDR8 => C::Text,
        oid::BIT | oid::VARBIT => C::Text,
        oid::INT2 => C::Int16,
        oid::INT4 => C::Int32,
        oid::INT8 | oid::OID => C::Int64,
        oid::FLOAT4 => C::Float32,
        oid::FLOAT8 => C::Float64,
        oid::NUMERIC | oid::MONEY => C::Decimal,
        oid::JSON | oid::JSONB => C::Json,
        oid::DATE => C::Date,
        oid::TIME | oid::TIMETZ => C::Time,
        oid::TIMESTAMP => C::Timestamp,
        oid::TIMESTAMPTZ => C::Timestamptz,
        oid::INTERVAL => C::Interval,
        oid::UUID => C::Uuid,
        _ => match category {
            Some('A') => C::Array,
            Some('E') => C::Text,
            _ => C::Other,
        },
    }
}

/// Reads big-endian integers off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "value truncated: wanted {n} bytes, {} left",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
}

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

/// Decodes one binary-format value of the given type.
///
/// `is_array` says the type is an array even when its OID is not a built-in one (an array
/// of an enum, say). Types without a decoder here come back as text when their binary form
/// is plain text (enums, `citext`, domains over text), else as bytes.
pub(crate) fn decode(type_oid: u32, is_array: bool, bytes: &[u8]) -> Result<Value, String> {
    if is_array {
        return decode_array(bytes);
    }
    let mut r = Reader(bytes);
    let text = || {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    Ok(match type_oid {
        oid::BOOL => Value::Boolean(r.u8()? != 0),
        oid::BYTEA => Value::Bytes(bytes.to_vec()),
        oid::CHAR => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        oid::NAME | oid::TEXT | oid::XML | oid::BPCHAR | oid::VARCHAR | oid::UNKNOWN => {
            Value::Text(text()?)
        }
        oid::INT2 => Value::Int(r.i16()?.into()),
        oid::INT4 => Value::Int(r.i32()?.into()),
        oid::INT8 => Value::Int(r.i64()?),
        oid::OID => Value::Int(u32::from_be_bytes(r.take(4)?.try_into().unwrap()).into()),
        oid::FLOAT4 => Value::Float(f32::from_be_bytes(r.take(4)?.try_into().unwrap()).into()),
        oid::FLOAT8 => Value::Float(f64::from_be_bytes(r.take(8)?.try_into().unwrap())),
        oid::NUMERIC => Value::Decimal(decode_numeric(bytes)?),
        oid::MONEY => Value::Decimal(decode_money(r.i64()?)),
        oid::JSON => Value::Json(serde_json::from_slice(bytes).map_err(|e| e.to_string())?),
        oid::JSONB => {
            let version = r.u8()?;
            if version != 1 {
                return Err(format!("unknown jsonb version {version}"));
            }
            Value::Json(serde_json::from_slice(r.0).map_err(|e| e.to_string())?)
        }
        oid::UUID => Value::Text(format_uuid(r.take(16)?)),
        oid::DATE => Value::Date(decode_date(r.i32()?)),
        oid::TIME => Value::Time(format_time(r.i64()?)),
        oid::TIMETZ => {
            let micros = r.i64()?;
            let west_seconds = r.i32()?;
            Value::Time(format!(
                "{}{}",
                format_time(micros),
                format_offset(-west_seconds)
            ))
        }
        oid::TIMESTAMP => Value::Timestamp(decode_timestamp(r.i64()?, false)),
        oid::TIMESTAMPTZ => Value::Timestamp(decode_timestamp(r.i64()?, true)),
        oid::INTERVAL => {
            let micros = r.i64()?;
            let days = r.i32()?;
            let months = r.i32()?;
            Value::Text(format_interval(months, days, micros))
        }
        oid::INET | oid::CIDR => Value::Text(decode_inet(bytes, type_oid == oid::CIDR)?),
        oid::MACADDR | oid::MACADDR8 => Value::Text(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        oid::BIT | oid::VARBIT => {
            let len = usize::try_from(r.i32()?).map_err(|_| "negative bit length")?;
            let bits = r.0;
            Value::Text(
                (0..len)
                    .map(|i| {
                        if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
                            '1'
                        } else {
                            '0'
                        }
                    })
                    .collect(),
            )
        }
        _ => match std::str::from_utf8(bytes) {
            Ok(s)
                if !s
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
            {
                Value::Text(s.to_owned())
            }
            _ => Value::Bytes(bytes.to_vec()),
        },
    })
}

fn decode_array(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader(bytes);
    let ndim = usize::try_from(r.i32()?).map_err(|_| "negative array dimensions")?;
    let _has_nulls = r.i32()?;
    let elem_oid = u32::from_be_bytes(r.take(4)?.try_into().unwrap());
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        dims.push(usize::try_from(r.i32()?).map_err(|_| "negative array length")?);
        let _lower_bound = r.i32()?;
    }
    fn build(dims: &[usize], r: &mut Reader<'_>, elem_oid: u32) -> Result<Value, String> {
        let mut items = Vec::with_capacity(dims[0]);
        for _ in 0..dims[0] {
            if dims.len() > 1 {
                items.push(build(&dims[1..], r, elem_oid)?);
                continue;
            }
            let len = r.i32()?;
            items.push(if len < 0 {
                Value::Null
            } else {
                decode(elem_oid, false, r.take(len as usize)?)?
            });
        }
        Ok(Value::Array(items))
    }
    build(&dims, &mut r, elem_oid)
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// numeric: base-10000 digits with a weight (the power of the first digit) and a display
/// scale (digits after the point).
fn decode_numeric(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader(bytes);
    let ndigits = r.i16()? as i32;
    let weight = r.i16()? as i32;
    let sign = r.i16()? as u16;
    let dscale = r.i16()? as usize;
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    // Base-10000 digits, read in place: this runs for every numeric value of a large result.
    let ndigits = ndigits.max(0);
    let digits = r.take(ndigits as usize * 2)?;
    let digit = |i: i32| -> u16 {
        if (0..ndigits).contains(&i) {
            let at = i as usize * 2;
            i16::from_be_bytes([digits[at], digits[at + 1]]).clamp(0, 9999) as u16
        } else {
            0
        }
    };
    let push4 = |out: &mut String, d: u16| {
        for place in [1000, 100, 10, 1] {
            out.push(char::from(b'0' + (d / place % 10) as u8));
        }
    };
    let mut out = String::with_capacity(((weight.max(0) + 1) * 4) as usize + dscale + 2);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        // The first digit without its leading zeros.
        let first = digit(0);
        for place in [1000, 100, 10, 1] {
            if first >= place || place == 1 {
                out.push(char::from(b'0' + (first / place % 10) as u8));
            }
        }
        for i in 1..=weight {
            push4(&mut out, digit(i));
        }
    }
    if dscale > 0 {
        out.push('.');
        let start = out.len();
        let mut i = weight + 1;
        while out.len() - start < dscale {
            push4(&mut out, digit(i));
            i += 1;
        }
        out.truncate(start + dscale);
    }
    Ok(out)
}

/// Encodes decimal text (`-12.50`, `NaN`, `Infinity`) as a binary numeric.
fn encode_numeric(text: &str) -> Result<Vec<u8>, String> {
    let special = |sign: u16| {
        let mut out = Vec::with_capacity(8);
        for v in [0i16, 0, sign as i16, 0] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    };
    match text.trim() {
        "NaN" => return Ok(special(NUMERIC_NAN)),
        "Infinity" | "+Infinity" | "inf" => return Ok(special(NUMERIC_PINF)),
        "-Infinity" | "-inf" => return Ok(special(NUMERIC_NINF)),
        _ => {}
    }
    let bad = || format!("`{text}` is not a decimal number");
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = frac_part.len();
    let int_part = int_part.trim_start_matches('0');
    let int_padded = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_padded = format!("{frac_part}{}", "0".repeat((4 - frac_part.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect()
    };
    let int_groups = group(&int_padded);
    let mut weight = int_groups.len() as i32 - 1;
    let mut groups: Vec<i16> = int_groups.into_iter().chain(group(&frac_padded)).collect();
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    for v in [
        groups.len() as i16,
        weight as i16,
        sign as i16,
        dscale as i16,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// money is an int64 count of the currency's smallest unit; two decimals is what every
/// locale PostgreSQL ships with uses for `lc_monetary`'s common currencies.
fn decode_money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn format_uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn decode_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => iso::date(days.into()).unwrap_or_else(|| chrono_date(days)),
    }
}

fn chrono_date(days: i32) -> String {
    pg_epoch()
        .date()
        .checked_add_signed(Duration::days(days.into()))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("{days} days from 2000-01-01"))
}

fn format_time(micros: i64) -> String {
    if micros == 86_400_000_000 {
        return "24:00:00".into();
    }
    let secs = micros.div_euclid(1_000_000) as u32;
    let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
        .map(|t| t.format("%H:%M:%S%.f").to_string())
        .unwrap_or_else(|| format!("{micros} microseconds"))
}

fn format_offset(east_seconds: i32) -> String {
    let sign = if east_seconds < 0 { '-' } else { '+' };
    let abs = east_seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

fn decode_timestamp(micros: i64, with_zone: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    iso::timestamp(micros, with_zone).unwrap_or_else(|| chrono_timestamp(micros, with_zone))
}

fn chrono_timestamp(micros: i64, with_zone: bool) -> String {
    let Some(ts) = pg_epoch().checked_add_signed(Duration::microseconds(micros)) else {
        return format!("{micros} microseconds from 2000-01-01");
    };
    if with_zone {
        ts.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, false)
    } else {
        ts.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
    }
}

/// ISO-8601 dates and timestamps written digit by digit, for the years 1 to 9999: a large
/// result has a date or timestamp in most rows, and chrono's general formatting machinery
/// was a tenth of the host's time streaming one. Other years (which chrono writes signed
/// and widened) are left to chrono; the output is chrono's to the byte, which the tests
/// check.
mod iso {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    /// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
    const PG_EPOCH_DAYS: i64 = 10_957;

    /// `days` after 2000-01-01 as `YYYY-MM-DD`.
    pub(super) fn date(days: i64) -> Option<String> {
        let mut out = String::with_capacity(10);
        push_date(days, &mut out)?;
        Some(out)
    }

    /// `micros` after 2000-01-01 as `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]`, with `+00:00` when
    /// `with_zone` (a `timestamptz` is sent in UTC).
    pub(super) fn timestamp(micros: i64, with_zone: bool) -> Option<String> {
        let mut out = String::with_capacity(32);
        push_date(micros.div_euclid(MICROS_PER_DAY), &mut out)?;
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let (seconds, fraction) = (of_day / 1_000_000, of_day % 1_000_000);
        out.push('T');
        push_digits(seconds / 3600, 2, &mut out);
        out.push(':');
        push_digits(seconds / 60 % 60, 2, &mut out);
        out.push(':');
        push_digits(seconds % 60, 2, &mut out);
        if fraction != 0 {
            out.push('.');
            if fraction % 1000 == 0 {
                push_digits(fraction / 1000, 3, &mut out);
            } else {
                push_digits(fraction, 6, &mut out);
            }
        }
        if with_zone {
            out.push_str("+00:00");
        }
        Some(out)
    }

    fn push_date(days: i64, out: &mut String) -> Option<()> {
        let (year, month, day) = civil_from_days(days.checked_add(PG_EPOCH_DAYS)?);
        if !(1..=9999).contains(&year) {
            return None;
        }
        push_digits(year, 4, out);
        out.push('-');
        push_digits(month, 2, out);
        out.push('-');
        push_digits(day, 2, out);
        Some(())
    }

    /// `n` (not negative) in exactly `width` digits, zero-padded.
    fn push_digits(n: i64, width: u32, out: &mut String) {
        let mut divisor = 10_i64.pow(width - 1);
        while divisor > 0 {
            out.push(char::from(b'0' + (n / divisor % 10) as u8));
            divisor /= 10;
        }
    }

    /// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01: Howard
    /// Hinnant's `civil_from_days`, in 400-year eras.
    fn civil_from_days(days: i64) -> (i64, i64, i64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }
}

/// ISO-8601 duration, as PostgreSQL's `intervalstyle = iso_8601` writes it: each part keeps
/// its own sign, since months, days and microseconds do not convert into one another.
fn format_interval(months: i32, days: i32, micros: i64) -> String {
    if months == 0 && days == 0 && micros == 0 {
        return "PT0S".into();
    }
    let mut out = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [(years, 'Y'), (months, 'M'), (days, 'D')] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if micros != 0 {
        out.push('T');
        let hours = micros / 3_600_000_000;
        let minutes = micros / 60_000_000 % 60;
        let sec_micros = micros % 60_000_000;
        if hours != 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes != 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if sec_micros != 0 {
            let sign = if sec_micros < 0 { "-" } else { "" };
            let abs = sec_micros.unsigned_abs();
            let frac = abs % 1_000_000;
            if frac == 0 {
                out.push_str(&format!("{sign}{}S", abs / 1_000_000));
            } else {
                let f = format!("{frac:06}");
                out.push_str(&format!(
                    "{sign}{}.{}S",
                    abs / 1_000_000,
                    f.trim_end_matches('0')
                ));
            }
        }
    }
    out
}

fn decode_inet(bytes: &[u8], is_cidr_type: bool) -> Result<String, String> {
    let mut r = Reader(bytes);
    let family = r.u8()?;
    let bits = r.u8()?;
    let _is_cidr = r.u8()?;
    let len = r.u8()? as usize;
    let addr = r.take(len)?;
    let (text, max_bits) = match (family, len) {
        (2, 4) => (
            std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            32,
        ),
        (3, 16) => {
            let octets: [u8; 16] = addr.try_into().unwrap();
            (std::net::Ipv6Addr::from(octets).to_string(), 128)
        }
        _ => return Err(format!("unknown inet family {family}")),
    };
    Ok(if is_cidr_type || bits != max_bits {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// The type of one statement parameter, as the server inferred it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParamType {
    pub oid: u32,
    /// For an array type, its element's OID.
    pub element: Option<u32>,
}

/// Encodes a parameter to the binary form of the type the server expects; `None` is NULL.
pub(crate) fn encode(ty: ParamType, value: &Value) -> Result<Option<Vec<u8>>, String> {
    if matches!(value, Value::Null) {
        return Ok(None);
    }
    if let Some(element) = ty.element {
        return encode_array(element, value).map(Some);
    }
    encode_scalar(ty.oid, value).map(Some)
}

fn encode_array(element: u32, value: &Value) -> Result<Vec<u8>, String> {
    let Value::Array(items) = value else {
        return Err(format!("expected an array, got {}", value.kind()));
    };
    // Dimensions from the nesting; every sub-array must have the same length.
    let mut dims = Vec::new();
    let mut probe = value;
    while let Value::Array(inner) = probe {
        dims.push(inner.len());
        match inner.first() {
            Some(first @ Value::Array(_)) => probe = first,
            _ => break,
        }
    }
    let mut leaves = Vec::new();
    fn flatten<'v>(
        v: &'v Value,
        depth: usize,
        dims: &[usize],
        out: &mut Vec<&'v Value>,
    ) -> Result<(), String> {
        match v {
            Value::Array(items) if depth < dims.len() => {
                if items.len() != dims[depth] {
                    return Err("multi-dimensional arrays must be rectangular".into());
                }
                items
                    .iter()
                    .try_for_each(|i| flatten(i, depth + 1, dims, out))
            }
            Value::Array(_) => Err("array nested deeper than its first element".into()),
            _ if depth == dims.len() => {
                out.push(v);
                Ok(())
            }
            _ => Err("multi-dimensional arrays must be rectangular".into()),
        }
    }
    if !items.is_empty() {
        flatten(value, 0, &dims, &mut leaves)?;
    }
    let mut out = Vec::new();
    let ndim = if items.is_empty() {
        0
    } else {
        dims.len() as i32
    };
    let has_nulls = leaves.iter().any(|v| matches!(v, Value::Null)) as i32;
    out.extend_from_slice(&ndim.to_be_bytes());
    out.extend_from_slice(&has_nulls.to_be_bytes());
    out.extend_from_slice(&element.to_be_bytes());
    if ndim > 0 {
        for d in &dims {
            out.extend_from_slice(&(*d as i32).to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
    }
    for leaf in leaves {
        match leaf {
            Value::Null => out.extend_from_slice(&(-1i32).to_be_bytes()),
            v => {
                let bytes = encode_scalar(element, v)?;
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    Ok(out)
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Text(s)
        | Value::Decimal(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Uint(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_i64(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => i64::try_from(*u).map_err(|_| format!("{u} is out of range")),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => Ok(*f as i64),
        Value::Text(s) | Value::Decimal(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an integer")),
        other => Err(format!("expected an integer, got {}", other.kind())),
    }
}

fn as_f64(value: &Value) -> Result<f64, String> {
    match value {
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::Float(f) => Ok(*f),
        Value::Text(s) | Value::Decimal(s) => match s.trim() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            t => t.parse().map_err(|_| format!("`{s}` is not a number")),
        },
        other => Err(format!("expected a number, got {}", other.kind())),
    }
}

fn text_param(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::Text(s)
        | Value::Decimal(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => Ok(s.clone()),
        other => Err(format!("expected {what} as a string, got {}", other.kind())),
    }
}

fn int_in<T: TryFrom<i64>>(value: &Value, name: &str) -> Result<T, String> {
    let i = as_i64(value)?;
    T::try_from(i).map_err(|_| format!("{i} is out of range for {name}"))
}

fn encode_scalar(type_oid: u32, value: &Value) -> Result<Vec<u8>, String> {
    Ok(match type_oid {
        oid::BOOL => vec![match value {
            Value::Boolean(b) => *b as u8,
            Value::Text(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "on" | "1" => 1,
                "false" | "f" | "no" | "off" | "0" => 0,
                _ => return Err(format!("`{s}` is not a boolean")),
            },
            other => return Err(format!("expected a boolean, got {}", other.kind())),
        }],
        oid::INT2 => int_in::<i16>(value, "smallint")?.to_be_bytes().to_vec(),
        oid::INT4 => int_in::<i32>(value, "integer")?.to_be_bytes().to_vec(),
        oid::INT8 => as_i64(value)?.to_be_bytes().to_vec(),
        oid::OID => int_in::<u32>(value, "oid")?.to_be_bytes().to_vec(),
        oid::FLOAT4 => (as_f64(value)? as f32).to_be_bytes().to_vec(),
        oid::FLOAT8 => as_f64(value)?.to_be_bytes().to_vec(),
        oid::NUMERIC => match value {
            Value::Float(f) if !f.is_finite() => {
                encode_numeric(&f.to_string().replace("inf", "Infinity"))?
            }
            v => encode_numeric(
                &as_text(v).ok_or_else(|| format!("expected a number, got {}", v.kind()))?,
            )?,
        },
        oid::BYTEA => match value {
            Value::Bytes(b) => b.clone(),
            Value::Text(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("bytea parameters are base64: {e}"))?,
            other => return Err(format!("expected base64 text, got {}", other.kind())),
        },
        oid::JSON | oid::JSONB => {
            let text = value.to_json().to_string();
            if type_oid == oid::JSONB {
                let mut out = Vec::with_capacity(text.len() + 1);
                out.push(1);
                out.extend_from_slice(text.as_bytes());
                out
            } else {
                text.into_bytes()
            }
        }
        oid::UUID => {
            let s = text_param(value, "a UUID")?;
            let hex: String = s.chars().filter(|c| *c != '-').collect();
            if hex.len() != 32 {
                return Err(format!("`{s}` is not a UUID"));
            }
            (0..16)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| format!("`{s}` is not a UUID"))?
        }
        oid::DATE => {
            let s = text_param(value, "a date")?;
            let days: i32 = match s.trim() {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                t => {
                    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d")
                        .map_err(|_| format!("`{s}` is not a YYYY-MM-DD date"))?;
                    (d - pg_epoch().date()).num_days() as i32
                }
            };
            days.to_be_bytes().to_vec()
        }
        oid::TIME => {
            let s = text_param(value, "a time")?;
            let t = NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
                .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M"))
                .map_err(|_| format!("`{s}` is not an HH:MM:SS time"))?;
            let micros =
                t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64;
            micros.to_be_bytes().to_vec()
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let s = text_param(value, "a timestamp")?;
            let micros = match s.trim() {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                t => {
                    let naive = parse_timestamp(t, type_oid == oid::TIMESTAMPTZ)
                        .ok_or_else(|| format!("`{s}` is not an ISO-8601 timestamp"))?;
                    (naive - pg_epoch())
                        .num_microseconds()
                        .ok_or_else(|| format!("`{s}` is out of range"))?
                }
            };
            micros.to_be_bytes().to_vec()
        }
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::UNKNOWN
        | oid::XML
        | oid::CHAR => as_text(value)
            .ok_or_else(|| format!("expected text, got {}", value.kind()))?
            .into_bytes(),
        other => {
            return Err(format!(
                "parameters of type OID {other} cannot be bound directly; cast the parameter \
                 from text in the query, e.g. `$1::text::yourtype`"
            ));
        }
    })
}

/// An ISO-8601 timestamp as UTC (for `timestamptz`, converting its offset; a timestamp
/// without one is taken as UTC) or as written (for `timestamp`, which, as PostgreSQL does,
/// ignores an offset).
fn parse_timestamp(text: &str, with_zone: bool) -> Option<NaiveDateTime> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
    {
        return Some(if with_zone {
            dt.naive_utc()
        } else {
            dt.naive_local()
        });
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_hms_opt(0, 0, 0).unwrap())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_numeric(text: &str) -> String {
        decode_numeric(&encode_numeric(text).unwrap()).unwrap()
    }

    #[test]
    fn dates_and_timestamps_are_written_as_chrono_writes_them() {
        // A spread of instants from 4713 BC to 294276 AD, each with no fraction,
        // milliseconds and microseconds, plus the edges of the fast path's years.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut samples = vec![0, -1, 1, 86_399_999_999, -86_400_000_000];
        for year_edge in [
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59",
            "1970-01-01T00:00:00",
        ] {
            let t = NaiveDateTime::parse_from_str(year_edge, "%Y-%m-%dT%H:%M:%S").unwrap();
            let micros = (t - pg_epoch()).num_microseconds().unwrap();
            samples.extend([micros - 1, micros, micros + 1]);
        }
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let any = (seed as i64) / 1_000_000 * 1_000_000;
            // Within ±285 years of 2000, where most data is, and anywhere.
            let near = any % 9_000_000_000_000_000;
            for whole in [near, any] {
                samples.extend([whole, whole + 123_000, whole + 123_456]);
            }
        }
        for micros in samples {
            for with_zone in [false, true] {
                assert_eq!(
                    decode_timestamp(micros, with_zone),
                    chrono_timestamp(micros, with_zone),
                    "{micros}"
                );
            }
            let days = (micros / 86_400_000_000) as i32;
            assert_eq!(decode_date(days), chrono_date(days), "{days}");
        }
    }

    #[test]
    fn numeric_keeps_every_digit_and_the_scale() {
        for s in [
            "0",
            "1",
            "-1",
            "10000",
            "123456789012345678901234567890.123456789",
            "0.0001",
            "0.00000001",
            "-0.5",
            "12.50",
            "1.000",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(roundtrip_numeric(s), s, "{s}");
        }
        assert_eq!(roundtrip_numeric("+007.10"), "7.10");
        assert!(encode_numeric("1e5").is_err());
        assert!(encode_numeric("").is_err());
        assert!(encode_numeric("12a").is_err());
    }

    #[test]
    fn temporal_values_are_iso_8601() {
        assert_eq!(decode_date(0), "2000-01-01");
        assert_eq!(decode_date(-1), "1999-12-31");
        assert_eq!(decode_date(i32::MAX), "infinity");
        assert_eq!(
            decode_timestamp(1_500_000, false),
            "2000-01-01T00:00:01.500"
        );
        assert_eq!(decode_timestamp(0, true), "2000-01-01T00:00:00+00:00");
        assert_eq!(decode_timestamp(i64::MIN, true), "-infinity");
        assert_eq!(format_time(86_400_000_000), "24:00:00");
        assert_eq!(format_time(3_723_000_001), "01:02:03.000001");
        assert_eq!(format_offset(-5 * 3600 - 1800), "-05:30");
        assert_eq!(format_interval(14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S");
        assert_eq!(format_interval(0, 0, -1_000_000), "PT-1S");
        assert_eq!(format_interval(0, 0, 0), "PT0S");
    }

    #[test]
    fn timestamps_encode_to_what_they_decode_from() {
        let ty = ParamType {
            oid: oid::TIMESTAMPTZ,
            element: None,
        };
        let bytes = encode(ty, &Value::Text("2024-02-29T13:00:00+01:00".into()))
            .unwrap()
            .unwrap();
        let micros = i64::from_be_bytes(bytes.try_into().unwrap());
        assert_eq!(decode_timestamp(micros, true), "2024-02-29T12:00:00+00:00");
        let ty = ParamType {
            oid: oid::DATE,
            element: None,
        };
        let bytes = encode(ty, &Value::Text("1999-12-31".into()))
            .unwrap()
            .unwrap();
        assert_eq!(i32::from_be_bytes(bytes.try_into().unwrap()), -1);
    }

    #[test]
    fn arrays_roundtrip_with_nulls_and_dimensions() {
        let value = Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Null]),
            Value::Array(vec![Value::Int(3), Value::Int(4)]),
        ]);
        let ty = ParamType {
            oid: 1007,
            element: Some(oid::INT4),
        };
        let bytes = encode(ty, &value).unwrap().unwrap();
        assert_eq!(decode(1007, true, &bytes).unwrap(), value);
        let empty = encode(ty, &Value::Array(vec![])).unwrap().unwrap();
        assert_eq!(decode(1007, true, &empty).unwrap(), Value::Array(vec![]));
        let ragged = Value::Array(vec![
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Int(3), Value::Int(4)]),
        ]);
        assert!(encode(ty, &ragged).is_err());
    }

    #[test]
    fn parameters_are_converted_to_the_inferred_type() {
        let int4 = ParamType {
            oid: oid::INT4,
            element: None,
        };
        assert_eq!(
            encode(int4, &Value::Text("42".into())).unwrap(),
            Some(42i32.to_be_bytes().to_vec())
        );
        assert!(
            encode(int4, &Value::Int(1 << 40))
                .unwrap_err()
                .contains("out of range")
        );
        assert!(encode(int4, &Value::Boolean(true)).is_err());
        let text = ParamType {
            oid: oid::TEXT,
            element: None,
        };
        assert_eq!(encode(text, &Value::Int(7)).unwrap(), Some(b"7".to_vec()));
        let uuid = ParamType {
            oid: oid::UUID,
            element: None,
        };
        let bytes = encode(
            uuid,
            &Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(format_uuid(&bytes), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        let inet = ParamType {
            oid: oid::INET,
            element: None,
        };
        assert!(
            encode(inet, &Value::Text("10.0.0.1".into()))
                .unwrap_err()
                .contains("::text::")
        );
        assert_eq!(encode(int4, &Value::Null).unwrap(), None);
    }

    #[test]
    fn unknown_types_fall_back_to_text_or_bytes() {
        assert_eq!(
            decode(99999, false, b"happy").unwrap(),
            Value::Text("happy".into())
        );
        assert_eq!(
            decode(99999, false, &[0, 1, 2]).unwrap(),
            Value::Bytes(vec![0, 1, 2])
        );
    }
}
