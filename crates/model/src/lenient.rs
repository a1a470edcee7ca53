//! Reading YAML or JSON written by other tools (OpenAPI documents, other gateways'
//! configurations) into a JSON value, leniently: such files use map keys that are numbers
//! (`200:`) and integers beyond 64 bits, which a strict reading refuses.

use std::fmt;

/// Parses YAML (or JSON) into a JSON value. Map keys that are numbers or booleans (`200:`)
/// become strings, integers beyond 64 bits (`-9223372036854776000`) become floats, and a
/// tagged value (`!Ref x`) is read as its value, instead of failing the whole document.
pub fn parse(text: &str) -> Result<serde_json::Value, String> {
    let Lenient(v) = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
    Ok(v)
}

/// A JSON value read leniently (see [`parse`]).
struct Lenient(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor).map(Lenient)
    }
}

struct LenientVisitor;

impl<'de> serde::de::Visitor<'de> for LenientVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i128<E>(self, v: i128) -> Result<Self::Value, E> {
        Ok(float(v as f64))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Self::Value, E> {
        Ok(float(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Lenient(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(Lenient(k)) = map.next_key()? {
            let key = match k {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => "null".to_string(),
                other => other.to_string(),
            };
            let Lenient(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        // A YAML `!tag value`: the value, without its tag.
        use serde::de::VariantAccess;
        let (_tag, variant): (Lenient, _) = data.variant()?;
        variant.newtype_variant::<Lenient>().map(|Lenient(v)| v)
    }
}

fn float(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_big_integers_and_tags() {
        let v =
            parse("a:\n  200: ok\n  true: yes\n  min: -9223372036854776000\n  t: !x 3\n").unwrap();
        assert_eq!(v["a"]["200"], "ok");
        assert_eq!(v["a"]["true"], "yes");
        assert_eq!(v["a"]["min"].as_f64(), Some(-9.223372036854776e18));
        assert_eq!(v["a"]["t"], 3);
        assert!(parse("a: [").is_err());
    }
}
