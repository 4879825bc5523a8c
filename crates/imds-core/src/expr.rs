//! `expr` nodes: values computed from fields and literals, with Elasticsearch EQL's function,
//! null and type rules (spec/ir.md, "Expressions").

use crate::event::{for_each_value, is_json_number};
use crate::ip::{parse_cidr, parse_ip, Cidr};
use crate::ir::{FieldType, Func, LitType, ValueExpr};
use crate::lucene_regex::LuceneRegex;
use crate::timestamp::parse_timestamp;
use crate::typed::{compare as typed_compare, java_double_any, java_double_string, read, Val};
use crate::wildcard::{ascii_fold, Pattern};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::ControlFlow;

/// Most combinations of field values tried per node and event (spec/ir.md).
pub const MAX_COMBINATIONS: usize = 1 << 20;

/// A compiled `expr` node.
pub(crate) struct ExprNode {
    /// The condition's EQL text.
    pub text: String,
    /// The fields it reads, in order of first appearance: name, path, type.
    fields: Vec<(String, Vec<String>, FieldType)>,
    root: CVal,
}

/// The static kind of a value, for the checks made when the rule is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Null,
    Bool,
    Num,
    Str,
    Date,
    Ip,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Bool => "a boolean",
            Ty::Num => "a number",
            Ty::Str => "a string",
            Ty::Date => "a date",
            Ty::Ip => "an ip",
        }
    }

    fn of_field(t: FieldType) -> Ty {
        match t {
            // Text and wildcard fields read their text in expressions, as keyword.
            FieldType::Keyword | FieldType::Text | FieldType::Wildcard => Ty::Str,
            FieldType::Ip => Ty::Ip,
            FieldType::Date => Ty::Date,
            FieldType::Boolean => Ty::Bool,
            _ => Ty::Num,
        }
    }
}

enum CVal {
    Const(Val<'static>),
    Field(usize),
    Call(Func, Vec<CVal>, Extra),
}

/// What a function's literal arguments compile to.
enum Extra {
    None,
    Patterns(Vec<Pattern>),
    Regexes(Vec<LuceneRegex>),
    Cidrs(Vec<Cidr>),
}

impl ExprNode {
    /// Compile; the error says what is wrong.
    pub fn compile(text: &str, value: &ValueExpr) -> Result<ExprNode, String> {
        let mut fields = Vec::new();
        let (root, _) = compile(value, &mut fields)?;
        Ok(ExprNode {
            text: text.to_owned(),
            fields,
            root,
        })
    }

    /// The fields it reads.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(name, _, _)| name.as_str())
    }

    /// The first field it names and its value (flattened text; `""` when it has none) in the
    /// first combination that gives `true`; `None` when none does.
    pub fn first_true<'a>(
        &self,
        doc: &'a Value,
        numbers: &[usize],
    ) -> Option<(&str, Cow<'a, str>)> {
        // Each field's values read as its type, with their text; no value at all is [null].
        let values: Vec<Vec<(Val<'a>, Cow<'a, str>)>> = (self.fields.iter())
            .map(|(_, path, t)| {
                let mut out = Vec::new();
                let _ = for_each_value(doc, path, &mut |text: Cow<'a, str>| {
                    if let Some(v) = read(*t, text.clone(), is_json_number(&text, numbers)) {
                        out.push((v, text));
                    }
                    ControlFlow::<()>::Continue(())
                });
                if out.is_empty() {
                    out.push((Val::Null, Cow::Borrowed("")));
                }
                out
            })
            .collect();
        // Combinations in order, the last field varying fastest.
        let mut index = vec![0usize; values.len()];
        let mut row: Vec<Val<'a>> = values.iter().map(|v| v[0].0.clone()).collect();
        for _ in 0..MAX_COMBINATIONS {
            if matches!(eval(&self.root, &row), Val::Bool(true)) {
                return Some(match self.fields.first() {
                    Some((name, _, _)) => (name.as_str(), values[0][index[0]].1.clone()),
                    None => ("", Cow::Borrowed("")),
                });
            }
            // Next combination.
            let mut i = values.len();
            loop {
                if i == 0 {
                    return None;
                }
                i -= 1;
                index[i] += 1;
                if index[i] < values[i].len() {
                    row[i] = values[i][index[i]].0.clone();
                    break;
                }
                index[i] = 0;
                row[i] = values[i][0].0.clone();
            }
        }
        None
    }
}

fn compile(
    value: &ValueExpr,
    fields: &mut Vec<(String, Vec<String>, FieldType)>,
) -> Result<(CVal, Ty), String> {
    Ok(match value {
        ValueExpr::Lit(lit) => {
            let (v, ty) = match (&lit.lit, lit.lit_type) {
                (Value::Null, None) => (Val::Null, Ty::Null),
                (Value::Bool(b), None) => (Val::Bool(*b), Ty::Bool),
                (Value::String(s), None) => (Val::Str(Cow::Owned(s.clone())), Ty::Str),
                (Value::String(s), Some(LitType::Date)) => (
                    Val::Date(
                        // As a date field reads it: to the millisecond.
                        parse_timestamp(s)
                            .ok_or_else(|| format!("{s:?} is not a date"))?
                            .div_euclid(1000)
                            * 1000,
                    ),
                    Ty::Date,
                ),
                (Value::String(s), Some(LitType::Ip)) => (
                    Val::Ip(parse_ip(s).ok_or_else(|| format!("{s:?} is not an IP address"))?),
                    Ty::Ip,
                ),
                (Value::Number(n), None) => {
                    let text = n.to_string();
                    let v = if n.is_f64() {
                        Val::Float(n.as_f64().expect("a float"))
                    } else {
                        match n.as_i64() {
                            Some(i) => Val::Int(i.into()),
                            None => return Err(format!("{text} is out of range for a long")),
                        }
                    };
                    (v, Ty::Num)
                }
                (other, Some(t)) => {
                    return Err(format!(
                        "a {} literal must be a string, not {other}",
                        match t {
                            LitType::Date => "date",
                            LitType::Ip => "ip",
                        }
                    ))
                }
                (other, None) => return Err(format!("{other} is not a literal")),
            };
            (CVal::Const(v), ty)
        }
        ValueExpr::Field(f) => {
            let at = match fields
                .iter()
                .position(|(name, _, t)| *name == f.field && *t == f.field_type)
            {
                Some(at) => at,
                None => {
                    let path = f.field.split('.').map(str::to_owned).collect();
                    fields.push((f.field.clone(), path, f.field_type));
                    fields.len() - 1
                }
            };
            (CVal::Field(at), Ty::of_field(f.field_type))
        }
        ValueExpr::Call(call) => {
            let name = call.func.as_str();
            let mut args = Vec::new();
            let mut tys = Vec::new();
            for a in &call.args {
                let (c, t) = compile(a, fields)?;
                args.push(c);
                tys.push(t);
            }
            let (min, max) = arity(call.func);
            if tys.len() < min || max.is_some_and(|max| tys.len() > max) {
                let wanted = match max {
                    Some(max) if max == min => format!("{min}"),
                    Some(max) => format!("{min} to {max}"),
                    None => format!("at least {min}"),
                };
                return Err(format!(
                    "{name} takes {wanted} arguments, not {}",
                    tys.len()
                ));
            }
            let expect = |i: usize, allowed: &[Ty]| -> Result<(), std::string::String> {
                let t = tys[i];
                if t == Ty::Null || allowed.contains(&t) {
                    Ok(())
                } else {
                    Err(format!(
                        "argument {} of {name} must be {}, not {}",
                        i + 1,
                        allowed
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(" or "),
                        t.name()
                    ))
                }
            };
            let literals = |from: usize| -> Result<Vec<std::string::String>, std::string::String> {
                (from..args.len())
                    .map(|i| match &args[i] {
                        CVal::Const(Val::Str(s)) => Ok(s.to_string()),
                        _ => Err(format!(
                            "argument {} of {name} must be a string literal",
                            i + 1
                        )),
                    })
                    .collect()
            };
            use Func::*;
            let mut extra = Extra::None;
            let ty = match call.func {
                // A choice of `in` of another kind only compares as null (spec/ir.md).
                In | InCi => {
                    if call.func == InCi {
                        expect(0, &[Ty::Str])?;
                    }
                    Ty::Bool
                }
                Eq | Neq | Lt | Lte | Gt | Gte => {
                    for i in 1..tys.len() {
                        let (a, b) = (tys[0], tys[i]);
                        if a != Ty::Null && b != Ty::Null && a != b {
                            return Err(format!("{name} compares {} with {}", a.name(), b.name()));
                        }
                    }
                    Ty::Bool
                }
                Like | LikeCi | Wildcard => {
                    expect(0, &[Ty::Str])?;
                    let fold = call.func != Like;
                    extra = Extra::Patterns(
                        literals(1)?
                            .iter()
                            .map(|p| Pattern::with_case(p, fold))
                            .collect(),
                    );
                    Ty::Bool
                }
                Regex | RegexCi => {
                    expect(0, &[Ty::Str])?;
                    extra = Extra::Regexes(
                        literals(1)?
                            .iter()
                            .map(|p| LuceneRegex::new(p, call.func == RegexCi))
                            .collect::<Result<_, _>>()?,
                    );
                    Ty::Bool
                }
                StartsWith | StartsWithCi | EndsWith | EndsWithCi | Contains | ContainsCi => {
                    expect(0, &[Ty::Str])?;
                    expect(1, &[Ty::Str])?;
                    Ty::Bool
                }
                CidrMatch => {
                    expect(0, &[Ty::Ip, Ty::Str])?;
                    extra = Extra::Cidrs(
                        literals(1)?
                            .iter()
                            .map(|b| {
                                parse_cidr(b).ok_or_else(|| format!("{b:?} is not a CIDR block"))
                            })
                            .collect::<Result<_, _>>()?,
                    );
                    Ty::Bool
                }
                And | Or | Not => {
                    for i in 0..tys.len() {
                        expect(i, &[Ty::Bool])?;
                    }
                    Ty::Bool
                }
                Add | Subtract | Multiply | Divide | Modulo | Negate => {
                    for i in 0..tys.len() {
                        expect(i, &[Ty::Num])?;
                    }
                    Ty::Num
                }
                Length => {
                    expect(0, &[Ty::Str])?;
                    Ty::Num
                }
                String | Concat => Ty::Str,
                IsNull => Ty::Bool,
                Number => {
                    expect(0, &[Ty::Str])?;
                    if tys.len() > 1 {
                        expect(1, &[Ty::Num])?;
                    }
                    Ty::Num
                }
                Substring => {
                    expect(0, &[Ty::Str])?;
                    for i in 1..tys.len() {
                        expect(i, &[Ty::Num])?;
                    }
                    Ty::Str
                }
                IndexOf | IndexOfCi => {
                    expect(0, &[Ty::Str])?;
                    expect(1, &[Ty::Str])?;
                    if tys.len() > 2 {
                        expect(2, &[Ty::Num])?;
                    }
                    Ty::Num
                }
                Between | BetweenCi => {
                    for i in 0..3 {
                        expect(i, &[Ty::Str])?;
                    }
                    if tys.len() > 3 {
                        expect(3, &[Ty::Bool])?;
                    }
                    Ty::Str
                }
            };
            (CVal::Call(call.func, args, extra), ty)
        }
    })
}

/// Least and most arguments (`None`: any number).
fn arity(f: Func) -> (usize, Option<usize>) {
    use Func::*;
    match f {
        Eq | Neq | Lt | Lte | Gt | Gte => (2, Some(2)),
        In | InCi | Like | LikeCi | Wildcard | Regex | RegexCi | CidrMatch => (2, None),
        StartsWith | StartsWithCi | EndsWith | EndsWithCi | Contains | ContainsCi => (2, Some(2)),
        And | Or => (1, None),
        Not | Negate | Length | String | IsNull => (1, Some(1)),
        Add | Subtract | Multiply | Divide | Modulo => (2, Some(2)),
        Number => (1, Some(2)),
        Substring => (2, Some(3)),
        IndexOf | IndexOfCi => (2, Some(3)),
        Concat => (1, None),
        Between | BetweenCi => (3, Some(4)),
    }
}

/// `Some(true)` / `Some(false)` / `None` (null) of a boolean-or-null value.
fn truth(v: &Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(*b),
        _ => None,
    }
}

fn boolean(b: Option<bool>) -> Val<'static> {
    b.map_or(Val::Null, Val::Bool)
}

/// A Java `int` from an integer argument: its low 32 bits (`Number.intValue`); a double or
/// anything else is `None`.
fn int_arg(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::Int(n) => Some(i64::from(*n as i32)),
        _ => None,
    }
}

/// A long result, or null when it overflows.
fn long(n: Option<i128>) -> Val<'static> {
    match n {
        Some(n) if (i128::from(i64::MIN)..=i128::from(i64::MAX)).contains(&n) => Val::Int(n),
        _ => Val::Null,
    }
}

fn float(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Int(n) => Some(*n as f64),
        Val::Float(x) => Some(*x),
        _ => None,
    }
}

fn eval<'a>(c: &CVal, row: &[Val<'a>]) -> Val<'a> {
    match c {
        CVal::Const(v) => v.clone(),
        CVal::Field(i) => row[*i].clone(),
        CVal::Call(f, args, extra) => call(*f, args, extra, row),
    }
}

fn call<'a>(f: Func, args: &[CVal], extra: &Extra, row: &[Val<'a>]) -> Val<'a> {
    use Func::*;
    let vals: Vec<Val<'a>> = args.iter().map(|a| eval(a, row)).collect();
    let str_at = |i: usize| -> Option<&str> {
        match vals.get(i) {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    };
    match f {
        Eq | Neq | Lt | Lte | Gt | Gte => {
            let Some(order) = compare(&vals[0], &vals[1]) else {
                return Val::Null;
            };
            Val::Bool(match f {
                Eq => order == Ordering::Equal,
                Neq => order != Ordering::Equal,
                Lt => order == Ordering::Less,
                Lte => order != Ordering::Greater,
                Gt => order == Ordering::Greater,
                _ => order != Ordering::Less,
            })
        }
        In | InCi => {
            if vals[0] == Val::Null {
                return Val::Null;
            }
            let mut unknown = false;
            for v in &vals[1..] {
                let equal = match (f, &vals[0], v) {
                    (InCi, Val::Str(a), Val::Str(b)) => Some(a.eq_ignore_ascii_case(b)),
                    _ => compare(&vals[0], v).map(|o| o == Ordering::Equal),
                };
                match equal {
                    Some(true) => return Val::Bool(true),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            boolean((!unknown).then_some(false))
        }
        Like | LikeCi | Wildcard | Regex | RegexCi | CidrMatch => {
            let matched = match (extra, &vals[0]) {
                (_, Val::Null) => return Val::Null,
                (Extra::Patterns(ps), Val::Str(s)) => ps.iter().any(|p| p.is_match(s)),
                (Extra::Regexes(rs), Val::Str(s)) => rs.iter().any(|r| r.is_match(s)),
                (Extra::Cidrs(cs), Val::Ip(a)) => cs.iter().any(|c| c.contains(a)),
                (Extra::Cidrs(cs), Val::Str(s)) => {
                    parse_ip(s).is_some_and(|a| cs.iter().any(|c| c.contains(&a)))
                }
                _ => return Val::Null,
            };
            Val::Bool(matched)
        }
        StartsWith | StartsWithCi | EndsWith | EndsWithCi | Contains | ContainsCi => {
            let (Some(s), Some(sub)) = (str_at(0), str_at(1)) else {
                return Val::Null;
            };
            let fold = matches!(f, StartsWithCi | EndsWithCi | ContainsCi);
            let (s, sub) = if fold {
                (Cow::Owned(ascii_fold(s)), Cow::Owned(ascii_fold(sub)))
            } else {
                (Cow::Borrowed(s), Cow::Borrowed(sub))
            };
            Val::Bool(match f {
                StartsWith | StartsWithCi => s.starts_with(&*sub),
                EndsWith | EndsWithCi => s.ends_with(&*sub),
                // Elasticsearch's script: false when either side is empty (unlike the
                // `contains` predicate).
                _ => !s.is_empty() && !sub.is_empty() && s.contains(&*sub),
            })
        }
        And => {
            let mut unknown = false;
            for v in &vals {
                match truth(v) {
                    Some(false) => return Val::Bool(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            boolean((!unknown).then_some(true))
        }
        Or => {
            let mut unknown = false;
            for v in &vals {
                match truth(v) {
                    Some(true) => return Val::Bool(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            boolean((!unknown).then_some(false))
        }
        Not => boolean(truth(&vals[0]).map(|b| !b)),
        IsNull => Val::Bool(vals[0] == Val::Null),
        Negate => match vals[0] {
            Val::Int(n) => long(n.checked_neg()),
            Val::Float(x) => Val::Float(-x),
            _ => Val::Null,
        },
        Add | Subtract | Multiply | Divide | Modulo => arithmetic(f, &vals[0], &vals[1]),
        Length => match str_at(0) {
            Some(s) => Val::Int(s.encode_utf16().count() as i128),
            None => Val::Null,
        },
        String => match to_string(&vals[0]) {
            Some(s) => Val::Str(Cow::Owned(s)),
            None => Val::Null,
        },
        Concat => {
            let mut out = std::string::String::new();
            for v in &vals {
                match to_string(v) {
                    Some(s) => out.push_str(&s),
                    None => return Val::Null,
                }
            }
            Val::Str(Cow::Owned(out))
        }
        Number => {
            let Some(s) = str_at(0) else {
                return Val::Null;
            };
            // The base as given (not cut to an int): only 2 to 36 is a base.
            let base = match vals.get(1) {
                None | Some(Val::Null) => None,
                Some(Val::Int(b)) => Some(i64::try_from(*b).unwrap_or(0)),
                Some(_) => return Val::Null,
            };
            number(s, base)
        }
        Substring => {
            let Some(s) = str_at(0) else {
                return Val::Null;
            };
            let start = match vals[1] {
                Val::Null => return Val::Str(Cow::Owned(s.to_owned())),
                ref v => int_arg(v),
            };
            let end = match vals.get(2) {
                None | Some(Val::Null) => None,
                Some(v) => match int_arg(v) {
                    Some(end) => Some(end),
                    None => return Val::Null,
                },
            };
            match start {
                Some(start) => Val::Str(Cow::Owned(substring(s, start, end))),
                None => Val::Null,
            }
        }
        IndexOf | IndexOfCi => {
            let (Some(s), Some(sub)) = (str_at(0), str_at(1)) else {
                return Val::Null;
            };
            let start = match vals.get(2) {
                None => 0,
                Some(v) => match int_arg(v) {
                    Some(start) => start,
                    None => return Val::Null,
                },
            };
            let (s, sub) = if f == IndexOfCi {
                (ascii_fold(s), ascii_fold(sub))
            } else {
                (s.to_owned(), sub.to_owned())
            };
            index_of(&s, &sub, start).map_or(Val::Null, |i| Val::Int(i as i128))
        }
        Between | BetweenCi => {
            let (Some(s), Some(left), Some(right)) = (str_at(0), str_at(1), str_at(2)) else {
                return Val::Null;
            };
            let greedy = match vals.get(3) {
                None => false,
                Some(v) => match truth(v) {
                    Some(greedy) => greedy,
                    None => return Val::Null,
                },
            };
            Val::Str(Cow::Owned(between(s, left, right, greedy, f == BetweenCi)))
        }
    }
}

/// How two values compare in a script (Elasticsearch's `Comparisons`): with a double on
/// either side both are widened to doubles and ordered as Java's `Double.compare` (−0.0
/// below 0.0, NaN equal to itself and above everything); otherwise as `typed::compare`.
fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Float(_), Val::Int(_) | Val::Float(_)) | (Val::Int(_), Val::Float(_)) => {
            Some(java_double_compare(float(a)?, float(b)?))
        }
        _ => typed_compare(a, b),
    }
}

/// Java's `Double.compare`.
fn java_double_compare(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // Equal values differ only as zeros of opposite signs.
        _ => x
            .partial_cmp(&y)
            .expect("no NaN")
            .then(y.is_sign_negative().cmp(&x.is_sign_negative())),
    }
}

fn arithmetic(f: Func, a: &Val<'_>, b: &Val<'_>) -> Val<'static> {
    use Func::*;
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => {
            let (x, y) = (*x, *y);
            long(match f {
                Add => x.checked_add(y),
                Subtract => x.checked_sub(y),
                Multiply => x.checked_mul(y),
                // Integer division truncates; by zero: null. Java's long division wraps
                // −2^63 / −1 to −2^63 and Elasticsearch does not check it.
                Divide if y == -1 && x == i128::from(i64::MIN) => Some(x),
                Divide => x.checked_div(y),
                _ => x.checked_rem(y),
            })
        }
        _ => {
            let (Some(x), Some(y)) = (float(a), float(b)) else {
                return Val::Null;
            };
            // By 0.0: Java's ±Infinity or NaN (only a long zero fails in Elasticsearch).
            Val::Float(match f {
                Add => x + y,
                Subtract => x - y,
                Multiply => x * y,
                Divide => x / y,
                _ => x % y,
            })
        }
    }
}

/// `string()`: Java's text of the value.
fn to_string(v: &Val<'_>) -> Option<String> {
    Some(match v {
        Val::Null => return None,
        Val::Bool(b) => b.to_string(),
        Val::Int(n) => n.to_string(),
        Val::Float(x) => java_double_string(*x),
        Val::Str(s) => s.to_string(),
        Val::Date(micros) => date_string(*micros),
        Val::Ip(a) => ip_string(a),
    })
}

/// An instant as `yyyy-MM-ddTHH:mm:ss.SSSZ` (microseconds when it has them).
pub(crate) fn date_string(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let secs = rest / 1_000_000;
    let frac = rest % 1_000_000;
    let fraction = if frac % 1000 == 0 {
        format!("{:03}", frac / 1000)
    } else {
        format!("{frac:06}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// An address as Elasticsearch shows it: dotted IPv4 for IPv4-mapped addresses, else
/// RFC 5952 (lower-case hex, the longest run of two or more zero groups as `::`).
pub(crate) fn ip_string(a: &[u8; 16]) -> String {
    if a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff {
        return format!("{}.{}.{}.{}", a[12], a[13], a[14], a[15]);
    }
    let groups: Vec<u16> = (0..8)
        .map(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]))
        .collect();
    let (mut best, mut best_len, mut i) = (0, 0, 0);
    while i < 8 {
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best, best_len) = (start, i - start);
        }
        i += 1;
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(&groups);
    }
    format!(
        "{}::{}",
        hex(&groups[..best]),
        hex(&groups[best + best_len..])
    )
}

/// `number(s [, base])` as Elasticsearch's `ToNumberFunctionProcessor`: a leading `0x`
/// means base 16 when no base is given and is cut off in base 16; base 10 reads a long
/// (`Long.valueOf`) or else a double (`Double.valueOf`); other bases a long
/// (`Long.parseLong`). Text that is not such a number gives null (Elasticsearch fails the
/// query instead).
fn number(s: &str, base: Option<i64>) -> Val<'static> {
    let hex = s.starts_with("0x");
    let base = base.unwrap_or(if hex { 16 } else { 10 });
    let s = if hex && base == 16 { &s[2..] } else { s };
    if base == 10 {
        return decimal_number(s);
    }
    let Ok(base) = u32::try_from(base) else {
        return Val::Null;
    };
    if !(2..=36).contains(&base) {
        return Val::Null;
    }
    i64::from_str_radix(s, base).map_or(Val::Null, |n| Val::Int(n.into()))
}

/// `number` in base 10: `[+-]digits` within a long is a long, else Java's double grammar
/// (spaces trimmed, `1e3`, `NaN`, `Infinity`, `0x1p3`, `d`/`f` suffixes).
fn decimal_number(s: &str) -> Val<'static> {
    if let Ok(n) = s.parse::<i64>() {
        return Val::Int(n.into());
    }
    java_double_any(s).map_or(Val::Null, Val::Float)
}

/// `substring`: Python slice semantics over UTF-16 code units (Java's string indexes); half of
/// a surrogate pair cut off becomes U+FFFD.
fn substring(s: &str, start: i64, end: Option<i64>) -> String {
    if s.is_ascii() {
        let (a, b) = slice_bounds(s.len() as i64, start, end);
        return s[a..b].to_owned();
    }
    let units: Vec<u16> = s.encode_utf16().collect();
    let (a, b) = slice_bounds(units.len() as i64, start, end);
    String::from_utf16_lossy(&units[a..b])
}

fn slice_bounds(len: i64, start: i64, end: Option<i64>) -> (usize, usize) {
    let mut start = if start < 0 { start + len } else { start };
    start = start.max(0);
    let mut end = end.unwrap_or(len);
    if end < 0 {
        end += len;
    }
    end = end.clamp(0, len);
    if start >= end {
        return (0, 0);
    }
    (start as usize, end as usize)
}

/// `indexOf`: the first occurrence at or after `start` (negative: 0), in UTF-16 code units;
/// `None` when there is none or `start` is past the end.
fn index_of(s: &str, sub: &str, start: i64) -> Option<usize> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let needle: Vec<u16> = sub.encode_utf16().collect();
    let start = start.max(0) as usize;
    if needle.is_empty() {
        return Some(start.min(units.len()));
    }
    if start > units.len() {
        return None;
    }
    units[start..]
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map(|i| i + start)
}

/// `between`: the text after the first `left` and before the next `right` (greedy: the last
/// `right`), `""` when either is missing; the text itself when it, `left` or `right` is empty
/// (Elasticsearch's `StringUtils.between`).
fn between(s: &str, left: &str, right: &str, greedy: bool, fold: bool) -> String {
    if s.is_empty() || left.is_empty() || right.is_empty() {
        return s.to_owned();
    }
    let (hay, l, r) = if fold {
        (ascii_fold(s), ascii_fold(left), ascii_fold(right))
    } else {
        (s.to_owned(), left.to_owned(), right.to_owned())
    };
    let Some(at) = hay.find(&l) else {
        return String::new();
    };
    let from = at + l.len();
    let end = if greedy {
        hay.rfind(&r).filter(|&e| e >= from)
    } else {
        hay[from..].find(&r).map(|e| e + from)
    };
    match end {
        // ASCII folding keeps byte offsets, so they index the original text.
        Some(end) => s[from..end].to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_functions_follow_elasticsearch() {
        assert_eq!(substring("start regsvr32.exe", 6, None), "regsvr32.exe");
        assert_eq!(substring("start regsvr32.exe", -4, None), ".exe");
        assert_eq!(substring("start regsvr32.exe", -4, Some(-1)), ".ex");
        assert_eq!(substring("start regsvr32.exe", 10, Some(2)), "");
        assert_eq!(substring("a😀b", 1, Some(2)), "\u{FFFD}");
        assert_eq!(substring("a😀b", 1, Some(3)), "😀");
        let d = "subdomain.example.com";
        assert_eq!(index_of(d, ".", 0), Some(9));
        assert_eq!(index_of(d, ".", 10), Some(17));
        assert_eq!(index_of(d, ".", -6), Some(9));
        assert_eq!(index_of(d, "", 10), Some(10));
        assert_eq!(index_of(d, ".", 30), None);
        assert_eq!(index_of(d, "z", 0), None);
        let p = "C:\\Windows\\System32\\cmd.exe";
        assert_eq!(between(p, "System32\\", ".exe", false, false), "cmd");
        assert_eq!(between(p, "system32\\", ".exe", false, false), "");
        assert_eq!(between(p, "system32\\", ".exe", false, true), "cmd");
        assert_eq!(between(p, "\\", "\\", false, false), "Windows");
        assert_eq!(between(p, "\\", "\\", true, false), "Windows\\System32");
        assert_eq!(between("", "", "", false, false), "");
        // StringUtils.between: the source itself when it or a delimiter is empty.
        assert_eq!(between("abc", "", "c", false, false), "abc");
        assert_eq!(between("abc", "a", "", true, false), "abc");
        assert_eq!(index_of(d, "", 30), Some(d.len()));
    }

    #[test]
    fn numbers_and_arithmetic() {
        assert_eq!(number("1337", None), Val::Int(1337));
        assert_eq!(number("+1337", None), Val::Int(1337));
        // Long.valueOf takes no spaces: Double.valueOf trims them.
        assert_eq!(number("  +1337 ", None), Val::Float(1337.0));
        assert_eq!(number("42.5", None), Val::Float(42.5));
        assert_eq!(number("deadbeef", Some(16)), Val::Int(3_735_928_559));
        assert_eq!(number("0xdeadbeef", None), Val::Int(3_735_928_559));
        assert_eq!(number("0xff", Some(16)), Val::Int(255));
        assert_eq!(number("0x10", Some(10)), Val::Null);
        assert_eq!(number(" 0x10", None), Val::Null);
        assert_eq!(number("0x1p3", Some(10)), Val::Float(8.0));
        assert_eq!(number("abc", None), Val::Null);
        assert_eq!(number("", None), Val::Null);
        assert_eq!(number("+", None), Val::Null);
        // Current Elasticsearch (Long.valueOf, else Double.valueOf), not DecimalFormat.
        assert_eq!(number("1.0", None), Val::Float(1.0));
        assert_eq!(number("1e3", None), Val::Float(1000.0));
        assert_eq!(number("1.337e3", None), Val::Float(1337.0));
        assert_eq!(number("1E+3", None), Val::Float(1000.0));
        assert_eq!(number("1.5d", None), Val::Float(1.5));
        assert_eq!(number("-0", None), Val::Int(0));
        assert!(matches!(number("-0.0", None), Val::Float(x) if x == 0.0 && x.is_sign_negative()));
        assert!(matches!(number("NaN", None), Val::Float(x) if x.is_nan()));
        assert_eq!(number("-Infinity", None), Val::Float(f64::NEG_INFINITY));
        assert_eq!(number("NaNd", None), Val::Null);
        assert_eq!(number("1E500", None), Val::Float(f64::INFINITY));
        assert_eq!(
            number("1e99999999999999999999", None),
            Val::Float(f64::INFINITY)
        );
        assert_eq!(number("-1e-99999999999999999999", None), Val::Float(-0.0));
        assert_eq!(
            number("9223372036854775808", None),
            Val::Float(9.223_372_036_854_776e18)
        );
        assert_eq!(
            number("-9223372036854775808", None),
            Val::Int(i64::MIN.into())
        );
        assert_eq!(number(".5", None), Val::Float(0.5));
        assert_eq!(number("5.", None), Val::Float(5.0));
        assert_eq!(number(".", None), Val::Null);
        assert_eq!(number("1 2", None), Val::Null);
        assert_eq!(number("-101", Some(2)), Val::Int(-5));
        assert_eq!(number("12", Some(37)), Val::Null);
        let (i, x) = (|n: i128| Val::Int(n), Val::Float);
        assert_eq!(arithmetic(Func::Divide, &i(4), &i(3)), i(1));
        assert_eq!(arithmetic(Func::Divide, &i(-7), &i(2)), i(-3));
        assert_eq!(arithmetic(Func::Divide, &i(4), &i(0)), Val::Null);
        assert_eq!(arithmetic(Func::Modulo, &i(4), &i(0)), Val::Null);
        assert_eq!(
            arithmetic(Func::Divide, &x(4.0), &i(0)),
            Val::Float(f64::INFINITY)
        );
        assert_eq!(
            arithmetic(Func::Divide, &i(-4), &x(0.0)),
            Val::Float(f64::NEG_INFINITY)
        );
        assert!(matches!(arithmetic(Func::Modulo, &i(4), &x(0.0)), Val::Float(x) if x.is_nan()));
        assert!(matches!(arithmetic(Func::Divide, &x(0.0), &x(0.0)), Val::Float(x) if x.is_nan()));
        assert_eq!(arithmetic(Func::Modulo, &i(-10), &i(-6)), i(-4));
        assert_eq!(arithmetic(Func::Modulo, &i(10), &i(-6)), i(4));
        assert_eq!(arithmetic(Func::Add, &i(i64::MAX.into()), &i(1)), Val::Null);
        // Java's long division wraps here; the remainder is 0.
        assert_eq!(
            arithmetic(Func::Divide, &i(i64::MIN.into()), &i(-1)),
            i(i64::MIN.into())
        );
        assert_eq!(arithmetic(Func::Modulo, &i(i64::MIN.into()), &i(-1)), i(0));
        assert_eq!(arithmetic(Func::Add, &i(4), &x(0.5)), x(4.5));
    }

    #[test]
    fn at_most_2_pow_20_combinations_are_tried() {
        // 102^3 combinations; a + b + c == 303 only in the last one, past the limit.
        let field = |f: &str| format!(r#"{{"field":"{f}","field_type":"long"}}"#);
        let sum = |target: i64| -> ExprNode {
            let text = format!(
                r#"{{"fn":"eq","args":[{{"fn":"add","args":[{{"fn":"add","args":[{},{}]}},{}]}},{{"lit":{target}}}]}}"#,
                field("a"),
                field("b"),
                field("c")
            );
            ExprNode::compile("t", &serde_json::from_str(&text).unwrap()).unwrap()
        };
        let values: Vec<String> = (0..102).map(|n| n.to_string()).collect();
        let doc = serde_json::json!({"a": values, "b": values, "c": values});
        assert!(102usize.pow(3) > MAX_COMBINATIONS);
        assert_eq!(
            sum(0).first_true(&doc, &[]),
            Some(("a", Cow::Borrowed("0")))
        );
        // 99 + 101 + 101 is combination 99·102² + 101·102 + 101 < 2^20: found; the first
        // sum of 302 (100 + 101 + 101) is past the limit, and 303 past it too.
        assert_eq!(
            sum(301).first_true(&doc, &[]),
            Some(("a", Cow::Borrowed("99")))
        );
        assert_eq!(sum(302).first_true(&doc, &[]), None);
        assert_eq!(sum(303).first_true(&doc, &[]), None);
    }

    #[test]
    fn string_of_each_type() {
        assert_eq!(to_string(&Val::Float(42.5)).unwrap(), "42.5");
        assert_eq!(to_string(&Val::Int(42)).unwrap(), "42");
        assert_eq!(to_string(&Val::Bool(true)).unwrap(), "true");
        assert_eq!(
            to_string(&Val::Date(1_504_126_053_000_000)).unwrap(),
            "2017-08-30T20:47:33.000Z"
        );
        assert_eq!(
            to_string(&Val::Ip(parse_ip("169.254.169.254").unwrap())).unwrap(),
            "169.254.169.254"
        );
        assert_eq!(
            to_string(&Val::Ip(parse_ip("fd00:ec2:0:0:0:0:0:254").unwrap())).unwrap(),
            "fd00:ec2::254"
        );
        assert_eq!(to_string(&Val::Null), None);
    }

    #[test]
    fn doubles_compare_as_java_double_compare() {
        let (i, x) = (|n: i128| Val::Int(n), Val::Float);
        let nan = x(f64::NAN);
        assert_eq!(compare(&nan, &nan), Some(Ordering::Equal));
        assert_eq!(compare(&nan, &x(f64::INFINITY)), Some(Ordering::Greater));
        assert_eq!(compare(&i(1), &nan), Some(Ordering::Less));
        assert_eq!(compare(&x(-0.0), &i(0)), Some(Ordering::Less));
        assert_eq!(
            compare(&x(f64::INFINITY), &i(i64::MAX.into())),
            Some(Ordering::Greater)
        );
        // The long is widened: 2^53 + 1 becomes 2^53.
        assert_eq!(
            compare(&i(9_007_199_254_740_993), &x(9_007_199_254_740_992.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(compare(&i(3), &i(4)), Some(Ordering::Less));
        assert_eq!(
            to_string(&x(f64::NEG_INFINITY)).as_deref(),
            Some("-Infinity")
        );
        assert_eq!(to_string(&nan).as_deref(), Some("NaN"));
    }
}
