//! Canonical JSON as TUF and securesystemslib define it (the OLPC dialect):
//! object keys sorted by code point, no insignificant whitespace, strings with
//! only `"` and `\` escaped, integers only.

use serde_json::Value;

/// Serialises `value` canonically, or says why it cannot be (a float).
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(1024);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            if let Some(n) = number.as_i64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else if let Some(n) = number.as_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(format!("the number `{number}` is not an integer"));
            }
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Rust orders `str` by UTF-8 bytes, which is code-point order, as Python's sort.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(&map[key], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in text.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_securesystemslib() {
        // Expected bytes produced by securesystemslib.formats.encode_canonical.
        let value = json!({"b": [1, -2, true, null], "a": "q\"uo\\te\nnl é", "A": {}});
        assert_eq!(
            String::from_utf8(to_canonical(&value).unwrap()).unwrap(),
            "{\"A\":{},\"a\":\"q\\\"uo\\\\te\nnl é\",\"b\":[1,-2,true,null]}"
        );
    }

    #[test]
    fn floats_are_refused() {
        assert!(
            to_canonical(&json!({"x": 1.5}))
                .unwrap_err()
                .contains("1.5")
        );
    }
}
