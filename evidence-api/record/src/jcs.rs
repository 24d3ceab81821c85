//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! The contract: object members sorted by their names' UTF-16 code units, no insignificant whitespace,
//! strings escaped minimally (only `"`, `\` and C0 controls; `\b \t \n \f \r` in short form, the rest as
//! `\u00xx` in lower-case hex), numbers written as ECMAScript's `Number.prototype.toString` writes an IEEE 754
//! double (shortest round-trip digits, exponent form outside 1e-7..1e21).

use serde_json::Value;
use std::fmt::Write as _;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JcsError(pub String);

impl std::fmt::Display for JcsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JcsError {}

/// The canonical UTF-8 bytes of `value`.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out.into_bytes())
}

/// The canonical form of a JSON text (parsed with serde_json first).
pub fn canonicalize_str(json: &str) -> Result<String, JcsError> {
    let value: Value = serde_json::from_str(json).map_err(|e| JcsError(e.to_string()))?;
    let bytes = canonicalize(&value)?;
    Ok(String::from_utf8(bytes).expect("canonical output is UTF-8"))
}

fn write_value(value: &Value, out: &mut String) -> Result<(), JcsError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            // JSON numbers are IEEE 754 doubles under JCS; an integer beyond 2^53 is rounded like JavaScript does.
            let f = n
                .as_f64()
                .ok_or_else(|| JcsError(format!("number {n} is not representable")))?;
            write_number(f, out)?;
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// ECMAScript number serialisation (RFC 8785 section 3.2.2.3).
pub fn write_number(f: f64, out: &mut String) -> Result<(), JcsError> {
    if !f.is_finite() {
        return Err(JcsError(format!("{f} is not a JSON number")));
    }
    if f == 0.0 {
        // -0 serialises as 0.
        out.push('0');
        return Ok(());
    }
    let mut buffer = ryu_js::Buffer::new();
    out.push_str(buffer.format_finite(f));
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(bits: u64) -> String {
        let mut s = String::new();
        write_number(f64::from_bits(bits), &mut s).unwrap();
        s
    }

    /// RFC 8785 Appendix B: IEEE 754 bit patterns and their expected serialisation.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let table: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, expected) in table {
            assert_eq!(num(*bits), *expected, "bits {bits:#018x}");
        }
        let mut s = String::new();
        assert!(write_number(f64::NAN, &mut s).is_err());
        assert!(write_number(f64::INFINITY, &mut s).is_err());
    }

    /// RFC 8785 section 3.2.2: the worked example of number and string output.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(canonicalize_str(input).unwrap(), expected);
    }

    /// RFC 8785 section 3.2.3: members sorted by UTF-16 code units, not by UTF-8 bytes or code points.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        let canonical = String::from_utf8(canonicalize(&value).unwrap()).unwrap();
        let reparsed: Value = serde_json::from_str(&canonical).unwrap();
        // serde_json's map keeps insertion order only with a feature; read the order from the text instead.
        let order: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let mut last = 0;
        for name in order {
            let at = canonical.find(name).unwrap();
            assert!(at > last || last == 0, "{name} out of order in {canonical}");
            last = at;
        }
        assert_eq!(reparsed, value);
        assert!(canonical.starts_with("{\"\\r\":\"Carriage Return\",\"1\":\"One\""));
    }

    #[test]
    fn nested_objects_and_no_whitespace() {
        let input = r#"{ "b": [ 1, { "z": 1, "a": 2 } ], "a": -0.0 }"#;
        assert_eq!(
            canonicalize_str(input).unwrap(),
            r#"{"a":0,"b":[1,{"a":2,"z":1}]}"#
        );
    }
}
