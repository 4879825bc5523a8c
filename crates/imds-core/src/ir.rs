//! The rule IR: plain data produced by the Python EQL compiler (see spec/ir.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The IR version this engine reads.
pub const IR_VERSION: u32 = 1;

/// The deepest branch accepted (a predicate is 1 level; `and`, `or`, `not` add one). The
/// compiler refuses conditions deeper than 100 levels (`eql.MAX_DEPTH`); the margin is for the
/// host filter and allowlist wrappers. The Python reference engine has the same limit.
pub const MAX_DEPTH: usize = 128;

/// JSON nesting of a document whose branches are at most [`MAX_DEPTH`] deep: the root, the
/// branches array, a branch, then up to two levels (node, `args`) per IR level and a
/// predicate's `values`. Deeper text is refused before it is deserialized.
const MAX_JSON_DEPTH: usize = 3 + 2 * MAX_DEPTH;

/// One rule: named branches (any match is a hit) and allowlist entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleIr {
    /// The IR version (`IR_VERSION`).
    pub ir_version: u32,
    /// The rule's identifier.
    #[serde(default)]
    pub id: String,
    /// The rule's name.
    pub name: String,
    /// The rule's severity, as written.
    #[serde(default)]
    pub severity: String,
    /// The branches, in order: the first that matches is reported.
    pub branches: Vec<Branch>,
    /// Allowlist entries, in order: an event that a branch matches and an entry matches is not
    /// a hit; it is counted against the first such entry (spec/ir.md, "Allowlists").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowlist: Vec<Node>,
}

/// A named condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// The branch's name.
    pub name: String,
    /// Its condition.
    pub expr: Node,
}

/// A condition: a boolean combination of predicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum Node {
    /// Every argument holds.
    And {
        /// The conditions.
        args: Vec<Node>,
    },
    /// Some argument holds.
    Or {
        /// The conditions.
        args: Vec<Node>,
    },
    /// The argument does not hold.
    Not {
        /// The condition.
        arg: Box<Node>,
    },
    /// A test of one field.
    Pred(Predicate),
    /// A condition computed from fields and literals (spec/ir.md, "Expressions"): holds when
    /// its value is `true`.
    Expr {
        /// The condition's EQL text (the witness's pattern).
        text: String,
        /// The value computed.
        expr: ValueExpr,
    },
    /// Some nested document at `path` makes `arg` hold (spec/ir.md, "Nested scopes"): the
    /// conditions under it hold on the same object.
    Nested {
        /// The nested field's path, written in full.
        path: String,
        /// The condition on each nested document (its fields written in full).
        arg: Box<Node>,
    },
}

/// A value of an `expr` node: a literal, a field, or a function of values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValueExpr {
    /// A function call.
    Call(Call),
    /// A field's values, read as its type.
    Field(FieldRef),
    /// A literal.
    Lit(Literal),
}

impl ValueExpr {
    /// Levels of function calls (a field or a literal is 0), counted without recursion.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 0)];
        while let Some((value, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            if let ValueExpr::Call(call) = value {
                stack.extend(call.args.iter().map(|a| (a, depth + 1)));
            }
        }
        deepest
    }
}

/// `{"fn": NAME, "args": [VALUE, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The function.
    #[serde(rename = "fn")]
    pub func: Func,
    /// Its arguments.
    pub args: Vec<ValueExpr>,
}

/// `{"field": NAME, "field_type": TYPE}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRef {
    /// The field (dotted path).
    pub field: String,
    /// Its type.
    pub field_type: FieldType,
}

/// `{"lit": VALUE}` or `{"lit": TEXT, "type": "date" | "ip"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Literal {
    /// A string, number, boolean or null.
    pub lit: Value,
    /// A string literal read as a date or an address.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub lit_type: Option<LitType>,
}

/// The type of a typed literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LitType {
    /// An instant (the `@timestamp` grammar).
    Date,
    /// An address.
    Ip,
}

macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// The name in the IR.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

names! {
    /// A function of an `expr` value (spec/ir.md, "Expressions").
    Func {
        /// `==`.
        Eq = "eq",
        /// `!=`.
        Neq = "neq",
        /// `<`.
        Lt = "lt",
        /// `<=`.
        Lte = "lte",
        /// `>`.
        Gt = "gt",
        /// `>=`.
        Gte = "gte",
        /// `in`.
        In = "in",
        /// `in~`.
        InCi = "in_ci",
        /// `like`.
        Like = "like",
        /// `like~`.
        LikeCi = "like_ci",
        /// `:`.
        Wildcard = "wildcard",
        /// `regex`.
        Regex = "regex",
        /// `regex~`.
        RegexCi = "regex_ci",
        /// `startsWith`.
        StartsWith = "starts_with",
        /// `startsWith~`.
        StartsWithCi = "starts_with_ci",
        /// `endsWith`.
        EndsWith = "ends_with",
        /// `endsWith~`.
        EndsWithCi = "ends_with_ci",
        /// `stringContains`.
        Contains = "contains",
        /// `stringContains~`.
        ContainsCi = "contains_ci",
        /// `cidrMatch`.
        CidrMatch = "cidr_match",
        /// `and`.
        And = "and",
        /// `or`.
        Or = "or",
        /// `not`.
        Not = "not",
        /// `+`, `add`.
        Add = "add",
        /// `-`, `subtract`.
        Subtract = "subtract",
        /// `*`, `multiply`.
        Multiply = "multiply",
        /// `/`, `divide`.
        Divide = "divide",
        /// `%`, `modulo`.
        Modulo = "modulo",
        /// Unary `-`.
        Negate = "negate",
        /// `length`.
        Length = "length",
        /// `string`.
        String = "string",
        /// `number`.
        Number = "number",
        /// `substring`.
        Substring = "substring",
        /// `indexOf`.
        IndexOf = "index_of",
        /// `indexOf~`.
        IndexOfCi = "index_of_ci",
        /// `concat`.
        Concat = "concat",
        /// `between`.
        Between = "between",
        /// `between~`.
        BetweenCi = "between_ci",
        /// `== null`: true when the value is null (never null itself).
        IsNull = "is_null",
    }
}

/// A test of one field's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicate {
    /// The field (dotted path).
    pub field: String,
    /// How the field's values are compared.
    pub field_type: FieldType,
    /// The operator.
    pub op: Op,
    /// The literals.
    pub values: Vec<String>,
    /// Keyword fields: a value longer than this many UTF-16 code units is not indexed (no
    /// value for any op).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_above: Option<u64>,
    /// Keyword fields: values are normalized before any op (literals are written normalized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalizer: Option<Normalizer>,
    /// Text fields (required there): how values and literals are tokenised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<Analyzer>,
}

names! {
    /// A keyword field's normalizer (spec/ir.md, "KQL additions").
    Normalizer {
        /// Java's `Character.toLowerCase`, code point by code point.
        Lowercase = "lowercase",
    }
}

names! {
    /// A text field's analyzer (spec/kql.md, "Analysis").
    Analyzer {
        /// Lucene's standard tokenizer, then lowercase.
        Standard = "standard",
        /// Elastic's Windows integration analyzer for PowerShell script blocks.
        PowershellScript = "powershell_script",
    }
}

impl From<Analyzer> for crate::analysis::Analyzer {
    fn from(analyzer: Analyzer) -> crate::analysis::Analyzer {
        match analyzer {
            Analyzer::Standard => crate::analysis::Analyzer::Standard,
            Analyzer::PowershellScript => crate::analysis::Analyzer::PowershellScript,
        }
    }
}

names! {
    /// The type of a field (its Elasticsearch mapping type; spec/ir.md, "Field types").
    FieldType {
        /// Text compared whole (also `constant_keyword`).
        Keyword = "keyword",
        /// An IP address (compared as an address).
        Ip = "ip",
        /// A signed 64-bit integer.
        Long = "long",
        /// A signed 32-bit integer.
        Integer = "integer",
        /// A signed 16-bit integer.
        Short = "short",
        /// A signed 8-bit integer.
        Byte = "byte",
        /// An unsigned 64-bit integer.
        UnsignedLong = "unsigned_long",
        /// A binary64 number.
        Double = "double",
        /// A binary32 number.
        Float = "float",
        /// A binary16 number.
        HalfFloat = "half_float",
        /// Read as a double (the scaling factor is not modelled).
        ScaledFloat = "scaled_float",
        /// An instant.
        Date = "date",
        /// `true` or `false`.
        Boolean = "boolean",
        /// Analyzed text (`text`, `match_only_text`): compared by tokens.
        Text = "text",
        /// Elasticsearch's `wildcard` type: the whole value, as a keyword.
        Wildcard = "wildcard",
    }
}

impl FieldType {
    /// The integer types and their ranges.
    pub fn integer_range(self) -> Option<(i128, i128)> {
        Some(match self {
            FieldType::Long => (i64::MIN.into(), i64::MAX.into()),
            FieldType::Integer => (i32::MIN.into(), i32::MAX.into()),
            FieldType::Short => (i16::MIN.into(), i16::MAX.into()),
            FieldType::Byte => (i8::MIN.into(), i8::MAX.into()),
            FieldType::UnsignedLong => (0, u64::MAX.into()),
            _ => return None,
        })
    }

    /// Whether values are numbers.
    pub fn is_numeric(self) -> bool {
        self.integer_range().is_some()
            || matches!(
                self,
                FieldType::Double
                    | FieldType::Float
                    | FieldType::HalfFloat
                    | FieldType::ScaledFloat
            )
    }
}

/// A predicate's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// EQL `==`, `in`: some value equals a literal (ip fields: as addresses).
    Eq,
    /// EQL `in~`: ASCII case-insensitive equality (ip fields: as addresses).
    EqCi,
    /// EQL `:`, `like~`: whole-value pattern, ASCII case-insensitive.
    Wildcard,
    /// EQL `like`: whole-value pattern, case-sensitive.
    Like,
    /// EQL `startsWith`.
    StartsWith,
    /// EQL `startsWith~`.
    StartsWithCi,
    /// EQL `endsWith`.
    EndsWith,
    /// EQL `endsWith~`.
    EndsWithCi,
    /// EQL `stringContains`.
    Contains,
    /// EQL `stringContains~`.
    ContainsCi,
    /// EQL `cidrMatch`: some value is an address inside one of the CIDR blocks.
    Cidr,
    /// EQL `field != null`: the field has a value (on an ip field: an address); no literals.
    Exists,
    /// EQL `imdsEndpoint`: some value names one of the metadata-endpoint classes (decoded by
    /// `endpoint.rs`; any field type). The witness value is the text that named it.
    ImdsEndpoint,
    /// EQL `<`: some value is below the literal, compared in the field's type.
    Lt,
    /// EQL `<=`.
    Lte,
    /// EQL `>`.
    Gt,
    /// EQL `>=`.
    Gte,
    /// EQL `regex`: some value matches the whole Lucene regular expression.
    Regex,
    /// EQL `regex~`: the same, ASCII case-insensitively.
    RegexCi,
    /// KQL on a text field: some token of a literal is some token of a value.
    Match,
    /// KQL quoted on a text field: a literal's tokens occur in a row in one value's tokens.
    MatchPhrase,
    /// Elasticsearch's `wildcard` query (`*`, `?`, `\x`); on text fields, over tokens.
    WildcardQuery,
    /// The same with `case_insensitive: true` (ASCII letters fold; escaped ones do not).
    WildcardQueryCi,
}

impl Op {
    /// The operator's name in the IR.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::EqCi => "eq_ci",
            Op::Wildcard => "wildcard",
            Op::Like => "like",
            Op::StartsWith => "starts_with",
            Op::StartsWithCi => "starts_with_ci",
            Op::EndsWith => "ends_with",
            Op::EndsWithCi => "ends_with_ci",
            Op::Contains => "contains",
            Op::ContainsCi => "contains_ci",
            Op::Cidr => "cidr",
            Op::Exists => "exists",
            Op::ImdsEndpoint => "imds_endpoint",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Regex => "regex",
            Op::RegexCi => "regex_ci",
            Op::Match => "match",
            Op::MatchPhrase => "match_phrase",
            Op::WildcardQuery => "wildcard_query",
            Op::WildcardQueryCi => "wildcard_query_ci",
        }
    }

    /// Operators that only make sense on text (refused on ip-typed fields).
    pub fn is_textual(self) -> bool {
        !matches!(
            self,
            Op::Eq
                | Op::EqCi
                | Op::Cidr
                | Op::Exists
                | Op::ImdsEndpoint
                | Op::Lt
                | Op::Lte
                | Op::Gt
                | Op::Gte
        )
    }

    /// The range operators.
    pub fn is_range(self) -> bool {
        matches!(self, Op::Lt | Op::Lte | Op::Gt | Op::Gte)
    }
}

impl RuleIr {
    /// Read an IR document (JSON); an error when it is invalid.
    pub fn from_json(text: &str) -> Result<RuleIr, crate::Error> {
        let bad = |e: serde_json::Error| crate::Error::rule(format!("bad IR: {e}"));
        // serde_json's own limit (128 nested arrays and objects, about 62 IR levels) is off:
        // the depth is bounded here first, so deserializing cannot overflow the stack.
        if json_depth(text) > MAX_JSON_DEPTH {
            return Err(crate::Error::rule(format!(
                "bad IR: nested more than {MAX_JSON_DEPTH} JSON levels deep \
                 (a branch nests at most {MAX_DEPTH} levels)"
            )));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        let doc = Value::deserialize(&mut de).map_err(bad)?;
        de.end().map_err(bad)?;
        // spec/ir.schema.json, checked by hand so that the error names the place (as the
        // Python reference engine's ir_schema.py does, in the same order and words).
        check_schema(&doc).map_err(|e| crate::Error::rule(format!("bad IR: {e}")))?;
        let ir = RuleIr::deserialize(doc).map_err(bad)?;
        for branch in &ir.branches {
            let depth = branch.expr.depth();
            if depth > MAX_DEPTH {
                return Err(crate::Error::in_branch(
                    &branch.name,
                    None,
                    format!("nests {depth} levels deep (at most {MAX_DEPTH} are supported)"),
                ));
            }
        }
        Ok(ir)
    }
}

impl Node {
    /// Levels of the tree (a predicate is 1), counted without recursion.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1)];
        while let Some((node, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match node {
                Node::And { args } | Node::Or { args } => {
                    stack.extend(args.iter().map(|a| (a, depth + 1)));
                }
                Node::Not { arg } | Node::Nested { arg, .. } => stack.push((arg, depth + 1)),
                Node::Pred(_) => {}
                // An expression's functions nest too, one level each (as the compiler counts).
                Node::Expr { expr, .. } => deepest = deepest.max(depth + expr.depth()),
            }
        }
        deepest
    }
}

/// An enum of spec/ir.schema.json (node kinds, field types, operators), by JSON pointer: the
/// names checked come from the schema itself, parsed once. Each pointer is looked up once
/// too: a lookup per IR node was a tenth of building an engine for Elastic's rules.
pub(crate) fn schema_enum(pointer: &str) -> &'static [&'static str] {
    type Enums = Vec<(String, &'static [&'static str])>;
    static ENUMS: std::sync::Mutex<Enums> = std::sync::Mutex::new(Vec::new());
    let mut enums = ENUMS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, names)) = enums.iter().find(|(p, _)| p == pointer) {
        return names;
    }
    let items = schema().pointer(pointer).and_then(Value::as_array);
    let items = items.unwrap_or_else(|| panic!("spec/ir.schema.json has no enum at {pointer}"));
    // Leaked once per pointer: the code names a handful.
    let names = Vec::leak(items.iter().filter_map(Value::as_str).collect());
    enums.push((pointer.to_owned(), names));
    names
}

/// spec/ir.schema.json, parsed once.
fn schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(include_str!("../../../spec/ir.schema.json"))
            .expect("spec/ir.schema.json is JSON")
    })
}

/// A predicate's optional keys (`ignore_above`, `normalizer`, `analyzer`), in schema order:
/// an integer of at least the minimum, or one of an enum.
fn check_pred_options(map: &serde_json::Map<String, Value>, path: &str) -> Result<(), String> {
    let props = &schema()["$defs"]["pred"]["properties"];
    for key in ["ignore_above", "normalizer", "analyzer"] {
        let Some(got) = map.get(key) else { continue };
        let place = key_path(path, key);
        let prop = &props[key];
        if prop["type"] == "integer" {
            let minimum = prop["minimum"].as_u64().unwrap_or(0);
            match got {
                Value::Number(n) if is_integer(n) => {
                    let text = n.to_string();
                    let value = n.as_u64().or((!text.starts_with('-')).then_some(u64::MAX));
                    if value.is_none_or(|v| v < minimum) {
                        return Err(format!("{place}: must be at least {minimum}, found {text}"));
                    }
                }
                other => {
                    return Err(format!(
                        "{place}: expected an integer, found {}",
                        kind_of(other)
                    ))
                }
            }
            continue;
        }
        let Value::String(s) = got else {
            return Err(format!(
                "{place}: expected a string, found {}",
                kind_of(got)
            ));
        };
        let allowed: Vec<&str> = (prop["enum"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if !allowed.contains(&s.as_str()) {
            return Err(format!(
                "{place}: {} is not one of: {}",
                Value::from(s.as_str()),
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// The words for a `$defs/pred/allOf` rule's `if` when `map` meets it: a key that is present
/// (`with "ignore_above"`), or a key whose value is listed (`with field_type "text"`).
fn pair_condition(test: &Value, map: &serde_json::Map<String, Value>) -> Option<String> {
    let props = test.get("properties").and_then(Value::as_object);
    let Some((key, allowed)) = props.and_then(|p| p.iter().next()) else {
        let key = test["required"][0].as_str()?;
        return map.contains_key(key).then(|| format!("with \"{key}\""));
    };
    let got = map.get(key)?;
    let listed = match allowed.get("enum") {
        Some(Value::Array(items)) => items.contains(got),
        _ => allowed.get("const") == Some(got),
    };
    listed.then(|| format!("with {key} {got}"))
}

/// Which field types take which optional keys and operators (the schema's `$defs/pred/allOf`,
/// rule by rule in its order; in each, a key it requires, then the values it allows), in the
/// Python checker's words.
fn check_pred_pairs(map: &serde_json::Map<String, Value>, path: &str) -> Result<(), String> {
    let rules = schema()["$defs"]["pred"]["allOf"].as_array();
    for rule in rules.into_iter().flatten() {
        let Some(condition) = pair_condition(&rule["if"], map) else {
            continue;
        };
        let then = &rule["then"];
        for key in (then["required"].as_array().into_iter().flatten()).filter_map(Value::as_str) {
            if !map.contains_key(key) {
                return Err(format!(
                    "{path}: missing key \"{key}\" (required {condition})"
                ));
            }
        }
        for (key, allowed) in then["properties"].as_object().into_iter().flatten() {
            let items = allowed["enum"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if let Some(got) = map.get(key).filter(|got| !items.contains(got)) {
                let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                return Err(format!(
                    "{}: {got} is not allowed {condition} (allowed: {})",
                    key_path(path, key),
                    names.join(", ")
                ));
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Place<'v> {
    Doc,
    Branch,
    Node,
    /// A NODE under a `nested` node's `arg`, with the innermost nested path.
    Nested(&'v str),
    /// A VALUE of an `expr` node.
    Value,
}

/// `path` followed by an object key: `.key`, or `["key"]` when it is not a plain name.
pub(crate) fn key_path(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::from(key))
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `doc` follows spec/ir.schema.json; else the first problem as `PATH: what`. The
/// order is fixed (the Python engine's `ir_schema.check` keeps it): a node's own keys (unknown
/// ones in document order, then missing ones, then each key in schema order), then its
/// children depth first, branches before the allowlist.
fn check_schema(doc: &Value) -> Result<(), String> {
    check_places(vec![(doc, "$".into(), Place::Doc)])
}

/// [`check_schema`] of one condition NODE at `path` (a sequence or sample stage's `expr`).
pub(crate) fn check_node(node: &Value, path: String) -> Result<(), String> {
    check_places(vec![(node, path, Place::Node)])
}

fn check_places<'v>(mut stack: Vec<(&'v Value, String, Place<'v>)>) -> Result<(), String> {
    while let Some((value, path, place)) = stack.pop() {
        let Value::Object(map) = value else {
            return Err(format!(
                "{path}: expected an object, found {}",
                kind_of(value)
            ));
        };
        let string = |key: &str| -> Result<Option<&str>, String> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(format!(
                    "{}: expected a string, found {}",
                    key_path(&path, key),
                    kind_of(other)
                )),
            }
        };
        let one_of = |key: &str, allowed: &[&str]| -> Result<(), String> {
            match string(key)? {
                Some(s) if !allowed.contains(&s) => Err(format!(
                    "{}: {} is not one of: {}",
                    key_path(&path, key),
                    Value::from(s),
                    allowed.join(", ")
                )),
                _ => Ok(()),
            }
        };
        let array = |key: &str, nonempty: bool| -> Result<&[Value], String> {
            match map.get(key) {
                None => Ok(&[]),
                Some(Value::Array(items)) if nonempty && items.is_empty() => {
                    Err(format!("{}: must not be empty", key_path(&path, key)))
                }
                Some(Value::Array(items)) => Ok(items),
                Some(other) => Err(format!(
                    "{}: expected an array, found {}",
                    key_path(&path, key),
                    kind_of(other)
                )),
            }
        };
        let kind = match place {
            Place::Doc => "doc",
            Place::Branch => "branch",
            Place::Node | Place::Nested(_) => {
                if !map.contains_key("node") {
                    return Err(format!("{path}: missing key \"node\""));
                }
                one_of("node", schema_enum("/$defs/node/properties/node/enum"))?;
                let kind = string("node")?.unwrap_or_default();
                if let (Place::Nested(scope), "expr") = (place, kind) {
                    return Err(format!(
                        "{}: nested node: an expr node cannot be under nested path {}",
                        key_path(&path, "node"),
                        Value::from(scope)
                    ));
                }
                kind
            }
            // The first of the keys that tell the three forms apart (the schema's `oneOf`
            // order); the other form's keys are then unknown keys.
            Place::Value => match ["lit", "field", "fn"]
                .into_iter()
                .find(|k| map.contains_key(*k))
            {
                Some(key) => key,
                None => return Err(format!("{path}: missing key \"lit\", \"field\" or \"fn\"")),
            },
        };
        let (keys, required): (&[&str], &[&str]) = match kind {
            "doc" => (
                &[
                    "ir_version",
                    "id",
                    "name",
                    "severity",
                    "branches",
                    "allowlist",
                ],
                &["ir_version", "name", "branches"],
            ),
            "branch" => (&["name", "expr"], &["name", "expr"]),
            "and" | "or" => (&["node", "args"], &["node", "args"]),
            "not" => (&["node", "arg"], &["node", "arg"]),
            "nested" => (&["node", "path", "arg"], &["node", "path", "arg"]),
            "expr" => (&["node", "text", "expr"], &["node", "text", "expr"]),
            "lit" => (&["lit", "type"], &["lit"]),
            "field" => (&["field", "field_type"], &["field", "field_type"]),
            "fn" => (&["fn", "args"], &["fn", "args"]),
            _ => (
                &[
                    "node",
                    "field",
                    "field_type",
                    "op",
                    "values",
                    "ignore_above",
                    "normalizer",
                    "analyzer",
                ],
                &["node", "field", "field_type", "op", "values"],
            ),
        };
        if let Some(key) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(format!("{}: unknown key", key_path(&path, key)));
        }
        if let Some(key) = required.iter().find(|k| !map.contains_key(**k)) {
            return Err(format!("{path}: missing key \"{key}\""));
        }
        let mut children: Vec<(&Value, String, Place)> = Vec::new();
        // Nodes under a nested node keep its path (`place`), to check their fields against.
        fn nodes<'v>(
            path: &str,
            key: &str,
            items: &'v [Value],
            place: Place<'v>,
            children: &mut Vec<(&'v Value, String, Place<'v>)>,
        ) {
            for (i, item) in items.iter().enumerate() {
                children.push((item, format!("{}[{i}]", key_path(path, key)), place));
            }
        }
        let child = match place {
            Place::Nested(_) => place,
            _ => Place::Node,
        };
        match kind {
            "doc" => {
                check_ir_version(map)?;
                string("id")?;
                string("name")?;
                string("severity")?;
                let branches = array("branches", true)?;
                let allowlist = array("allowlist", false)?;
                for (i, item) in branches.iter().enumerate() {
                    children.push((item, format!("$.branches[{i}]"), Place::Branch));
                }
                nodes(&path, "allowlist", allowlist, Place::Node, &mut children);
            }
            "branch" => {
                string("name")?;
                children.push((&map["expr"], key_path(&path, "expr"), Place::Node));
            }
            "and" | "or" => nodes(&path, "args", array("args", true)?, child, &mut children),
            "not" => children.push((&map["arg"], key_path(&path, "arg"), child)),
            "nested" => {
                let nested = string("path")?.unwrap_or_default();
                check_nested_path(nested, place, &key_path(&path, "path"))?;
                children.push((&map["arg"], key_path(&path, "arg"), Place::Nested(nested)));
            }
            "expr" => {
                string("text")?;
                children.push((&map["expr"], key_path(&path, "expr"), Place::Value));
            }
            "lit" => {
                if let Some(other @ (Value::Array(_) | Value::Object(_))) = map.get("lit") {
                    return Err(format!(
                        "{}: expected a string, a number, a boolean or null, found {}",
                        key_path(&path, "lit"),
                        kind_of(other)
                    ));
                }
                one_of(
                    "type",
                    schema_enum("/$defs/value/oneOf/0/properties/type/enum"),
                )?;
            }
            "field" => {
                string("field")?;
                one_of(
                    "field_type",
                    schema_enum("/$defs/pred/properties/field_type/enum"),
                )?;
            }
            "fn" => {
                one_of("fn", schema_enum("/$defs/value/oneOf/2/properties/fn/enum"))?;
                for (i, item) in array("args", false)?.iter().enumerate() {
                    children.push((
                        item,
                        format!("{}[{i}]", key_path(&path, "args")),
                        Place::Value,
                    ));
                }
            }
            _ => {
                if let (Some(field), Place::Nested(scope)) = (string("field")?, place) {
                    if !is_under(field, scope) {
                        return Err(format!(
                            "{}: nested node: field {} is not under its path {}",
                            key_path(&path, "field"),
                            Value::from(field),
                            Value::from(scope)
                        ));
                    }
                }
                one_of(
                    "field_type",
                    schema_enum("/$defs/pred/properties/field_type/enum"),
                )?;
                one_of("op", schema_enum("/$defs/pred/properties/op/enum"))?;
                let values = array("values", false)?;
                for (i, item) in values.iter().enumerate() {
                    if !item.is_string() {
                        return Err(format!(
                            "{}[{i}]: expected a string, found {}",
                            key_path(&path, "values"),
                            kind_of(item)
                        ));
                    }
                }
                check_pred_options(map, &path)?;
                check_pred_pairs(map, &path)?;
            }
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}

/// Whether `field` is a field below the nested path `scope` (it starts with `scope.`).
fn is_under(field: &str, scope: &str) -> bool {
    field
        .strip_prefix(scope)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// A nested node's `path` (at `place` in the document): a field path (non-empty, no empty
/// part), below the enclosing nested node's path when there is one.
fn check_nested_path(nested: &str, place: Place<'_>, at: &str) -> Result<(), String> {
    if nested.split('.').any(str::is_empty) {
        return Err(format!(
            "{at}: nested node: path {} is not a field path",
            Value::from(nested)
        ));
    }
    match place {
        Place::Nested(scope) if !is_under(nested, scope) => Err(format!(
            "{at}: nested node: path {} is not under its path {}",
            Value::from(nested),
            Value::from(scope)
        )),
        _ => Ok(()),
    }
}

/// A JSON number written without a fraction or an exponent (the text is kept as written).
pub(crate) fn is_integer(n: &serde_json::Number) -> bool {
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped); a linear scan
/// that needs no valid JSON (the parser reports what is wrong).
pub(crate) fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The document's `ir_version`, when present: an integer equal to [`IR_VERSION`].
pub(crate) fn check_ir_version(map: &serde_json::Map<String, Value>) -> Result<(), String> {
    match map.get("ir_version") {
        Some(Value::Number(n)) if is_integer(n) && n.to_string() != IR_VERSION.to_string() => Err(
            format!("$.ir_version: IR version {n} is not supported (expected {IR_VERSION})"),
        ),
        Some(Value::Number(n)) if is_integer(n) => Ok(()),
        Some(other) => Err(format!(
            "$.ir_version: expected an integer, found {}",
            kind_of(other)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(field: &str) -> String {
        format!(
            r#"{{"node":"pred","field":"{field}","field_type":"keyword","op":"eq","values":["x"]}}"#
        )
    }

    /// A branch `levels` deep: `and`/`or` alternating around a predicate.
    fn alternating(levels: usize) -> String {
        let mut node = pred("f0");
        for i in 1..levels {
            let kind = if i % 2 == 1 { "and" } else { "or" };
            node = format!(
                r#"{{"node":"{kind}","args":[{},{node}]}}"#,
                pred(&format!("f{i}"))
            );
        }
        node
    }

    fn rule(expr: &str) -> String {
        format!(r#"{{"ir_version":1,"name":"n","branches":[{{"name":"b","expr":{expr}}}]}}"#)
    }

    #[test]
    fn deep_branches_up_to_the_limit_load() {
        // serde_json alone stops at 128 JSON levels, about 62 IR levels.
        let ir = RuleIr::from_json(&rule(&alternating(MAX_DEPTH))).unwrap();
        assert_eq!(ir.branches[0].expr.depth(), MAX_DEPTH);
        let nots = (1..MAX_DEPTH).fold(pred("f"), |n, _| format!(r#"{{"node":"not","arg":{n}}}"#));
        assert_eq!(
            RuleIr::from_json(&rule(&nots)).unwrap().branches[0]
                .expr
                .depth(),
            MAX_DEPTH
        );
    }

    #[test]
    fn deeper_branches_are_refused_with_the_reason() {
        let err = RuleIr::from_json(&rule(&alternating(MAX_DEPTH + 1))).unwrap_err();
        assert!(
            err.to_string().contains("nested more than 259 JSON levels"),
            "{err}"
        );
        let nots = (0..MAX_DEPTH).fold(pred("f"), |n, _| format!(r#"{{"node":"not","arg":{n}}}"#));
        let err = RuleIr::from_json(&rule(&nots)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule error: branch \"b\" nests 129 levels deep (at most 128 are supported)"
        );
        // Far deeper text is refused before it is parsed (no stack overflow).
        let text = "[".repeat(1_000_000);
        assert!(RuleIr::from_json(&text).is_err());
    }

    #[test]
    fn the_schemas_operators_are_the_ir_enums() {
        let ops = schema_enum("/$defs/pred/properties/op/enum");
        assert_eq!(ops.len(), 23);
        for &name in ops {
            let op: Op = serde_json::from_value(Value::from(name)).unwrap();
            assert_eq!(op.as_str(), name);
        }
        let types = schema_enum("/$defs/pred/properties/field_type/enum");
        assert_eq!(types.len(), 15);
        for &name in types {
            let t: FieldType = serde_json::from_value(Value::from(name)).unwrap();
            assert_eq!(t.as_str(), name);
        }
        let funcs = schema_enum("/$defs/value/oneOf/2/properties/fn/enum");
        assert_eq!(funcs.len(), 39);
        for &name in funcs {
            let f: Func = serde_json::from_value(Value::from(name)).unwrap();
            assert_eq!(f.as_str(), name);
        }
        for &name in schema_enum("/$defs/value/oneOf/0/properties/type/enum") {
            serde_json::from_value::<LitType>(Value::from(name)).unwrap();
        }
    }

    #[test]
    fn an_expressions_functions_count_as_levels() {
        let value = (0..MAX_DEPTH - 1).fold(r#"{"lit":true}"#.to_owned(), |v, _| {
            format!(r#"{{"fn":"not","args":[{v}]}}"#)
        });
        let node = format!(r#"{{"node":"expr","text":"t","expr":{value}}}"#);
        let ir = RuleIr::from_json(&rule(&node)).unwrap();
        assert_eq!(ir.branches[0].expr.depth(), MAX_DEPTH);
        let deeper = format!(r#"{{"node":"not","arg":{node}}}"#);
        assert!(RuleIr::from_json(&rule(&deeper)).is_err());
    }

    #[test]
    fn depth_skips_strings() {
        assert_eq!(json_depth(r#"{"a":"[[[{{\"[","b":[1]}"#), 2);
    }
}
