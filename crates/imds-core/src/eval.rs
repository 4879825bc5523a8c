//! Evaluating a compiled rule against one parsed event.

use crate::analysis::{analyze, wildcard_on_text, TokenQuery};
use crate::event::{
    field_nodes, flatten, for_each_nested_doc, for_each_value, is_json_number, NestedDoc, Scope,
};
use crate::expr::ExprNode;
use crate::ip::{parse_cidr, parse_ip, Cidr};
use crate::ir::{Analyzer, FieldType, Node, Op, Predicate, RuleIr};
use crate::lucene_regex::LuceneRegex;
use crate::typed::{compare, java_lowercase, read, read_literal_span, utf16_len, Val};
use crate::wildcard::{ascii_fold, eq_folded, Pattern};
use serde_json::Value;
use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::ControlFlow;

/// The predicate that decided a hit (spec/ir.md, "Witness").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The field tested.
    pub field: String,
    /// The operator ([`crate::Op::as_str`]).
    pub op: &'static str,
    /// The literal (or pattern) that matched.
    pub pattern: String,
    /// The field's value that matched.
    pub value: String,
}

/// A rule's match of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the first matching branch.
    pub branch: usize,
    /// The predicate that decided it, when one did.
    pub witness: Option<Witness>,
}

/// A rule ready to judge events.
pub struct CompiledRule {
    /// The rule it was compiled from.
    pub ir: RuleIr,
    /// One per `ir.branches`, same order.
    branches: Vec<Expr>,
    /// One per `ir.allowlist`, same order.
    allowlist: Vec<Expr>,
}

/// What a rule makes of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A branch matched and no allowlist entry did.
    Hit(Match),
    /// A branch matched, and so did this allowlist entry (the first that did).
    Allowed(usize),
    /// No branch matched.
    Miss,
}

enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Pred(Pred),
    /// An `expr` node.
    Script(ExprNode),
    /// A `nested` node.
    Nested(Box<Nested>),
}

struct Pred {
    field: String,
    path: Vec<String>,
    op: Op,
    /// The literals as written in the IR (reported in witnesses).
    literals: Vec<String>,
    test: Test,
    /// Keyword fields: values longer than this (UTF-16 code units) are not indexed.
    ignore_above: Option<u64>,
    /// Keyword fields: values are lowercased (the `lowercase` normalizer) before any op.
    lowercase: bool,
    /// Text fields: how values are tokenised.
    analyzer: Option<Analyzer>,
    /// Its path's number among an engine's paths read at the event's scope
    /// ([`FieldSlots`]), by which a line's lookups are shared ([`Lookups`]); `None` under a
    /// `nested` node (a path relative to a nested document) or outside an engine.
    slot: Option<u32>,
}

/// How a value is compared with the literals; each vector is parallel to `Pred::literals`.
enum Test {
    Exact,
    /// ASCII-folded literals.
    FoldedEq(Vec<String>),
    /// IP-typed field (`eq` or `eq_ci`): values that parse compare as addresses.
    Address(Vec<[u8; 16]>),
    /// `cidr` (any field type): values that parse as addresses, inside a block.
    Cidr(Vec<Cidr>),
    /// `exists`: any value of the field's type (on a keyword field, any value at all);
    /// reported with an empty pattern.
    Exists(FieldType),
    /// `eq` on a field that is neither keyword nor ip, and the range operators: values read
    /// as the type, compared with the literals read the same way: each as its first and last
    /// value (they differ for dates, which round up as Elasticsearch's range query does).
    Typed {
        field_type: FieldType,
        literals: Vec<(Val<'static>, Val<'static>)>,
    },
    /// `regex`, `regex_ci` (keyword fields).
    Regex(Vec<LuceneRegex>),
    /// `imds_endpoint`: endpoint classes (the literals); see `endpoint.rs`.
    Endpoint,
    /// `wildcard` (folding) and `like` (case-sensitive) patterns.
    Wildcard(Vec<Pattern>),
    /// `match` (text fields): each literal's tokens; some one of them is some token of a value.
    AnyToken(Vec<Vec<String>>),
    /// `match_phrase` (text fields): each literal's tokens, in a row in a value's tokens.
    Phrase(Vec<Vec<String>>),
    /// `wildcard_query` on text fields: per literal, what a token is tested against
    /// ([`crate::analysis::wildcard_on_text`]); the literal holds when some entry does.
    TokenQueries(Vec<Vec<TokenTest>>),
    /// `starts_with`, `ends_with`, `contains`; `folded` holds the ASCII-folded literals of the
    /// `_ci` forms (the value is folded too), `None` for the case-sensitive forms.
    Affix {
        place: Place,
        folded: Option<Vec<String>>,
    },
}

/// One entry of [`crate::analysis::TokenQuery`], compiled.
enum TokenTest {
    Term(String),
    Prefix(String),
    Wildcard(Pattern),
    Exists,
}

impl TokenTest {
    fn new(query: TokenQuery) -> TokenTest {
        match query {
            TokenQuery::Term(t) => TokenTest::Term(t),
            TokenQuery::Prefix(t) => TokenTest::Prefix(t),
            TokenQuery::Wildcard(p) => TokenTest::Wildcard(Pattern::elasticsearch(&p, false)),
            TokenQuery::Exists => TokenTest::Exists,
        }
    }

    /// Whether a value with these tokens holds it (`Exists`: any value does).
    fn holds(&self, tokens: &[String]) -> bool {
        match self {
            TokenTest::Term(t) => tokens.contains(t),
            TokenTest::Prefix(t) => tokens.iter().any(|token| token.starts_with(t.as_str())),
            TokenTest::Wildcard(p) => tokens.iter().any(|token| p.is_match(token)),
            TokenTest::Exists => true,
        }
    }
}

/// Where an affix literal must sit in the value.
#[derive(Clone, Copy)]
enum Place {
    Start,
    End,
    Anywhere,
}

impl Place {
    fn holds(self, value: &str, literal: &str) -> bool {
        match self {
            Place::Start => value.starts_with(literal),
            Place::End => value.ends_with(literal),
            Place::Anywhere => value.contains(literal),
        }
    }
}

impl Pred {
    fn compile(p: &Predicate, branch: &str) -> Result<Pred, crate::Error> {
        let bad = |what: String| crate::Error::in_branch(branch, Some(&p.field), what);
        let folded = || Some(p.values.iter().map(|v| ascii_fold(v)).collect());
        let affix = |place, folded| Test::Affix { place, folded };
        // A `wildcard` field is a keyword one (the whole value, case-sensitive).
        let field_type = match p.field_type {
            FieldType::Wildcard => FieldType::Keyword,
            other => other,
        };
        let tokens = |analyzer: Analyzer| -> Vec<Vec<String>> {
            (p.values.iter())
                .map(|v| analyze(analyzer.into(), v))
                .collect()
        };
        let test = match (field_type, p.op) {
            // spec/ir.schema.json requires the analyzer on text fields and allows only these ops.
            (FieldType::Text, op) => {
                let analyzer = p.analyzer.unwrap_or(Analyzer::Standard);
                match op {
                    Op::Exists if !p.values.is_empty() => {
                        return Err(bad("exists takes no values".into()))
                    }
                    Op::Exists => Test::Exists(FieldType::Keyword),
                    Op::Match => Test::AnyToken(tokens(analyzer)),
                    Op::MatchPhrase => Test::Phrase(tokens(analyzer)),
                    Op::WildcardQuery => Test::TokenQueries(
                        (p.values.iter())
                            .map(|v| {
                                (wildcard_on_text(analyzer.into(), v).into_iter())
                                    .map(TokenTest::new)
                                    .collect()
                            })
                            .collect(),
                    ),
                    op => {
                        return Err(bad(format!(
                            "{} is not allowed on a text field",
                            op.as_str()
                        )))
                    }
                }
            }
            (FieldType::Keyword, Op::WildcardQuery | Op::WildcardQueryCi) => Test::Wildcard(
                (p.values.iter())
                    .map(|v| Pattern::elasticsearch(v, p.op == Op::WildcardQueryCi))
                    .collect(),
            ),
            (field_type, Op::Match | Op::MatchPhrase | Op::WildcardQuery | Op::WildcardQueryCi) => {
                return Err(bad(format!(
                    "{} is not allowed on a {} field",
                    p.op.as_str(),
                    field_type.as_str()
                )))
            }
            (_, Op::Exists) if !p.values.is_empty() => {
                return Err(bad("exists takes no values".into()))
            }
            (_, Op::ImdsEndpoint) => {
                if let Some(v) = p.values.iter().find(|v| !crate::endpoint::is_class(v)) {
                    return Err(bad(format!("{v:?} is not an endpoint class")));
                }
                Test::Endpoint
            }
            (field_type, Op::Exists) => Test::Exists(field_type),
            (field_type, op)
                if field_type != FieldType::Keyword
                    && (op.is_textual() || (op == Op::EqCi && field_type != FieldType::Ip)) =>
            {
                let article = match field_type {
                    FieldType::Ip | FieldType::Integer => "an",
                    _ => "a",
                };
                return Err(bad(format!(
                    "{} is not allowed on {article} {} field",
                    op.as_str(),
                    field_type.as_str()
                )));
            }
            (_, Op::Cidr) => Test::Cidr(
                p.values
                    .iter()
                    .map(|v| parse_cidr(v).ok_or_else(|| bad(format!("{v:?} is not a CIDR block"))))
                    .collect::<Result<_, _>>()?,
            ),
            (field_type, op)
                if op.is_range()
                    || (op == Op::Eq
                        && field_type != FieldType::Keyword
                        && field_type != FieldType::Ip) =>
            {
                if op.is_range() && p.values.len() != 1 {
                    return Err(bad(format!(
                        "{} takes one value, not {}",
                        op.as_str(),
                        p.values.len()
                    )));
                }
                let literals = (p.values.iter())
                    .map(|v| {
                        read_literal_span(field_type, v).ok_or_else(|| {
                            let article = match field_type {
                                FieldType::Ip | FieldType::Integer => "an",
                                _ => "a",
                            };
                            bad(format!(
                                "{v:?} is not {article} {} value",
                                field_type.as_str()
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Test::Typed {
                    field_type,
                    literals,
                }
            }
            (FieldType::Ip, _) => Test::Address(
                p.values
                    .iter()
                    .map(|v| parse_ip(v).ok_or_else(|| bad(format!("{v:?} is not an IP address"))))
                    .collect::<Result<_, _>>()?,
            ),
            (FieldType::Keyword, Op::Eq) => Test::Exact,
            (FieldType::Keyword, Op::EqCi) => {
                Test::FoldedEq(p.values.iter().map(|v| ascii_fold(v)).collect())
            }
            (FieldType::Keyword, Op::Wildcard | Op::Like) => Test::Wildcard(
                p.values
                    .iter()
                    .map(|v| Pattern::with_case(v, p.op == Op::Wildcard))
                    .collect(),
            ),
            (FieldType::Keyword, Op::StartsWith) => affix(Place::Start, None),
            (FieldType::Keyword, Op::StartsWithCi) => affix(Place::Start, folded()),
            (FieldType::Keyword, Op::EndsWith) => affix(Place::End, None),
            (FieldType::Keyword, Op::EndsWithCi) => affix(Place::End, folded()),
            (FieldType::Keyword, Op::Contains) => affix(Place::Anywhere, None),
            (FieldType::Keyword, Op::ContainsCi) => affix(Place::Anywhere, folded()),
            (FieldType::Keyword, Op::Regex | Op::RegexCi) => Test::Regex(
                (p.values.iter())
                    .map(|v| LuceneRegex::new(v, p.op == Op::RegexCi).map_err(&bad))
                    .collect::<Result<_, _>>()?,
            ),
            (_, op) => unreachable!("{} on {:?} is handled above", op.as_str(), p.field_type),
        };
        let keyword = field_type == FieldType::Keyword;
        Ok(Pred {
            ignore_above: p.ignore_above.filter(|_| keyword),
            lowercase: keyword && p.normalizer.is_some(),
            analyzer: p.analyzer.filter(|_| field_type == FieldType::Text),
            field: p.field.clone(),
            path: p.field.split('.').map(str::to_owned).collect(),
            op: p.op,
            // `exists` has no literal: its witness reports an empty pattern.
            literals: if p.op == Op::Exists {
                vec![String::new()]
            } else {
                p.values.clone()
            },
            test,
            slot: None,
        })
    }

    /// Index of the first literal `value` satisfies (`numbers`: which values were JSON numbers,
    /// for typed fields).
    #[allow(clippy::ptr_arg)] // is_json_number needs to know whether it is borrowed
    fn literal_for(&self, value: &Cow<'_, str>, numbers: &[usize]) -> Option<usize> {
        match &self.test {
            Test::Exact => self.literals.iter().position(|l| l == value),
            Test::FoldedEq(folded) => folded.iter().position(|l| eq_folded(value, l)),
            Test::Address(addresses) => {
                let address = parse_ip(value)?;
                addresses.iter().position(|a| *a == address)
            }
            Test::Exists(FieldType::Keyword) => Some(0),
            Test::Exists(field_type) => read(
                *field_type,
                Cow::Borrowed(value),
                is_json_number(value, numbers),
            )
            .map(|_| 0),
            Test::Typed {
                field_type,
                literals,
            } => {
                let number = is_json_number(value, numbers);
                let value = read(*field_type, Cow::Borrowed(value), number)?;
                let holds =
                    |l: &Val<'_>, test: fn(Ordering) -> bool| compare(&value, l).is_some_and(test);
                literals.iter().position(|(low, high)| match self.op {
                    Op::Lt => holds(low, Ordering::is_lt),
                    Op::Lte => holds(high, Ordering::is_le),
                    Op::Gt => holds(high, Ordering::is_gt),
                    Op::Gte => holds(low, Ordering::is_ge),
                    _ => holds(low, Ordering::is_ge) && holds(high, Ordering::is_le),
                })
            }
            Test::Regex(regexes) => regexes.iter().position(|r| r.is_match(value)),
            Test::Endpoint => unreachable!("first_hit handles imds_endpoint"),
            Test::Cidr(blocks) => {
                let address = parse_ip(value)?;
                blocks.iter().position(|b| b.contains(&address))
            }
            Test::Wildcard(patterns) => patterns.iter().position(|p| p.is_match(value)),
            Test::AnyToken(literals) => {
                let tokens = self.tokens(value);
                literals
                    .iter()
                    .position(|l| l.iter().any(|t| tokens.contains(t)))
            }
            Test::Phrase(literals) => {
                let tokens = self.tokens(value);
                literals.iter().position(|l| {
                    !l.is_empty() && tokens.windows(l.len()).any(|w| w == l.as_slice())
                })
            }
            Test::TokenQueries(literals) => {
                let tokens = self.tokens(value);
                (literals.iter()).position(|tests| tests.iter().any(|t| t.holds(&tokens)))
            }
            Test::Affix {
                place,
                folded: None,
            } => self.literals.iter().position(|l| place.holds(value, l)),
            Test::Affix {
                place,
                folded: Some(folded),
            } => {
                let value = ascii_fold(value);
                folded.iter().position(|l| place.holds(&value, l))
            }
        }
    }

    /// A text field's tokens of `value`.
    fn tokens(&self, value: &str) -> Vec<String> {
        analyze(self.analyzer.unwrap_or(Analyzer::Standard).into(), value)
    }

    /// What a keyword field indexes of `value`: nothing past `ignore_above`, else the value
    /// normalized.
    fn indexed<'v>(&self, value: &'v str) -> Option<Cow<'v, str>> {
        if self
            .ignore_above
            .is_some_and(|n| utf16_len(value) as u64 > n)
        {
            return None;
        }
        Some(if self.lowercase {
            java_lowercase(value)
        } else {
            Cow::Borrowed(value)
        })
    }

    /// The first value (in value order) satisfying the predicate, and its first literal, of
    /// the values in `scope` (the event, or a nested document of `event`, which `path` is
    /// then relative to).
    fn first_hit<'a>(
        &self,
        scope: impl Scope<'a>,
        event: &'a Value,
        numbers: &[usize],
        lookups: Lu<'a, '_>,
    ) -> Option<(Cow<'a, str>, usize)> {
        if matches!(self.test, Test::Endpoint) {
            // The witness value is the text that named the endpoint, not the whole value.
            let mut event_ports = || destination_ports(event);
            let found = self.values(scope, lookups, &mut |value| {
                let found = self.indexed(&value).and_then(|value| {
                    crate::endpoint::first_match(&value, &self.literals, &mut event_ports)
                        .map(|(literal, token)| (literal, token.to_owned()))
                });
                match found {
                    Some((literal, token)) => ControlFlow::Break((Cow::Owned(token), literal)),
                    None => ControlFlow::Continue(()),
                }
            });
            return match found {
                ControlFlow::Break(hit) => Some(hit),
                ControlFlow::Continue(()) => None,
            };
        }
        let plain = self.ignore_above.is_none() && !self.lowercase;
        let found = self.values(scope, lookups, &mut |value| {
            // The witness shows the value as the event has it.
            let literal = if plain {
                self.literal_for(&value, numbers)
            } else {
                (self.indexed(&value)).and_then(|v| self.literal_for(&Cow::Borrowed(&*v), numbers))
            };
            match literal {
                Some(literal) => ControlFlow::Break((value, literal)),
                None => ControlFlow::Continue(()),
            }
        });
        match found {
            ControlFlow::Break(hit) => Some(hit),
            ControlFlow::Continue(()) => None,
        }
    }

    /// Call `f` with the field's values in `scope`: found once per line and path through
    /// `lookups` when the predicate has a slot (then `scope` is the event's).
    fn values<'a, B>(
        &self,
        scope: impl Scope<'a>,
        lookups: Lu<'a, '_>,
        f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        match (self.slot, lookups) {
            (Some(slot), Some(lookups)) => lookups.for_each_value(slot, &self.path, f),
            _ => scope.for_each_value(&self.path, f),
        }
    }
}

/// The event's `destination.port` values that are port numbers (digits), for port-scoped
/// endpoint classes.
fn destination_ports(doc: &Value) -> Vec<u64> {
    let mut ports = Vec::new();
    let _ = for_each_value(doc, &["destination", "port"], &mut |value| {
        ports.extend(crate::endpoint::port_number(&value));
        ControlFlow::<()>::Continue(())
    });
    ports
}

impl Expr {
    /// `scope`: the path of the enclosing `nested` node, which the predicates' paths are then
    /// relative to (the IR checker refused fields and paths not below it, and `expr` nodes
    /// under it; a tree built in Rust is checked here).
    fn compile(node: &Node, scope: Option<&str>, branch: &str) -> Result<Expr, crate::Error> {
        let all = |args: &[Node]| {
            args.iter()
                .map(|a| Expr::compile(a, scope, branch))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match node {
            Node::And { args } => Expr::And(all(args)?),
            Node::Or { args } => Expr::Or(all(args)?),
            Node::Not { arg } => Expr::Not(Box::new(Expr::compile(arg, scope, branch)?)),
            Node::Pred(p) => {
                let mut pred = Pred::compile(p, branch)?;
                if let Some(scope) = scope {
                    let Some(relative) = below(&p.field, scope) else {
                        return Err(crate::Error::in_branch(
                            branch,
                            Some(&p.field),
                            format!(
                                "nested node: field {:?} is not under its path {scope:?}",
                                p.field
                            ),
                        ));
                    };
                    pred.path = relative.split('.').map(str::to_owned).collect();
                }
                Expr::Pred(pred)
            }
            Node::Expr { .. } if scope.is_some() => {
                return Err(crate::Error::in_branch(
                    branch,
                    None,
                    format!(
                        "has a nested node: an expr node cannot be under nested path {:?}",
                        scope.unwrap_or_default()
                    ),
                ))
            }
            Node::Expr { text, expr } => {
                Expr::Script(ExprNode::compile(text, expr).map_err(|what| {
                    crate::Error::in_branch(branch, None, format!("expression {text:?}: {what}"))
                })?)
            }
            Node::Nested { path, arg } => Expr::Nested(Nested::compile(path, arg, scope, branch)?),
        })
    }

    /// Append the fields this expression reads (`imds_endpoint` also reads
    /// `destination.port`, for port-scoped classes).
    fn fields<'e>(&'e self, out: &mut Vec<&'e str>) {
        match self {
            Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| e.fields(out)),
            Expr::Not(e) => e.fields(out),
            Expr::Pred(pred) => {
                out.push(&pred.field);
                if matches!(pred.test, Test::Endpoint) {
                    out.push("destination.port");
                }
            }
            Expr::Script(node) => out.extend(node.field_names()),
            Expr::Nested(nested) => nested.fields(out),
        }
    }

    /// Whether a `not` is below (then a nested document can hold without any field).
    fn has_not(&self) -> bool {
        match self {
            Expr::And(args) | Expr::Or(args) => args.iter().any(Expr::has_not),
            Expr::Not(_) => true,
            Expr::Pred(_) | Expr::Script(_) => false,
            Expr::Nested(nested) => nested.arg.has_not(),
        }
    }

    /// Whether it holds on the event `doc`.
    fn holds<'a>(&self, doc: &'a Value, numbers: &[usize], lookups: Lu<'a, '_>) -> bool {
        self.eval(NestedDoc::Object(doc), doc, numbers, lookups)
    }

    /// Whether it holds in `scope`: the event, or a nested document of `event`.
    fn eval<'a>(
        &self,
        scope: NestedDoc<'a>,
        event: &'a Value,
        numbers: &[usize],
        lookups: Lu<'a, '_>,
    ) -> bool {
        match self {
            Expr::And(args) => args.iter().all(|a| a.eval(scope, event, numbers, lookups)),
            Expr::Or(args) => args.iter().any(|a| a.eval(scope, event, numbers, lookups)),
            Expr::Not(arg) => !arg.eval(scope, event, numbers, lookups),
            Expr::Pred(p) => p.first_hit(scope, event, numbers, lookups).is_some(),
            // Only at the event's scope (compile refuses it under a nested node).
            Expr::Script(node) => node.first_true(event, numbers).is_some(),
            Expr::Nested(nested) => nested.first(scope, event, numbers, lookups).is_some(),
        }
    }

    /// Number the paths its predicates read at the event's scope (not those under a
    /// `nested` node, relative to a nested document).
    fn number_fields(&mut self, slots: &mut FieldSlots) {
        match self {
            Expr::And(args) | Expr::Or(args) => {
                args.iter_mut().for_each(|a| a.number_fields(slots))
            }
            Expr::Not(arg) => arg.number_fields(slots),
            Expr::Pred(p) => p.slot = Some(slots.slot(&p.path)),
            Expr::Script(_) | Expr::Nested(_) => {}
        }
    }

    /// Push the witness entries of a node known to be true in `scope` (spec/ir.md "Witness"):
    /// a predicate gives one, `and` its children's, `or` its first true child's (marked
    /// under-or), `not` none, `nested` its condition's on the first document that holds.
    fn collect<'e, 'a>(
        &'e self,
        scope: NestedDoc<'a>,
        event: &'a Value,
        numbers: &[usize],
        lookups: Lu<'a, '_>,
        under_or: bool,
        out: &mut Vec<Entry<'e, 'a>>,
    ) {
        match self {
            Expr::And(args) => {
                for arg in args {
                    arg.collect(scope, event, numbers, lookups, under_or, out);
                }
            }
            Expr::Or(args) => {
                let holds = |a: &&Expr| a.eval(scope, event, numbers, lookups);
                if let Some(first_true) = args.iter().find(holds) {
                    first_true.collect(scope, event, numbers, lookups, true, out);
                }
            }
            Expr::Not(_) => {}
            Expr::Pred(pred) => {
                if let Some((value, literal)) = pred.first_hit(scope, event, numbers, lookups) {
                    out.push(Entry {
                        field: &pred.field,
                        op: pred.op.as_str(),
                        pattern: &pred.literals[literal],
                        value,
                        under_or,
                    });
                }
            }
            Expr::Script(node) => {
                if let Some((field, value)) = node.first_true(event, numbers) {
                    out.push(Entry {
                        field,
                        op: "expr",
                        pattern: &node.text,
                        value,
                        under_or,
                    });
                }
            }
            Expr::Nested(nested) => {
                if let Some(inner) = nested.first(scope, event, numbers, lookups) {
                    nested
                        .arg
                        .collect(inner, event, numbers, lookups, under_or, out);
                }
            }
        }
    }
}

/// A `nested` node (spec/ir.md, "Nested scopes"): some nested document at `path` makes `arg`
/// hold.
struct Nested {
    /// The path written in full (projected whole when `arg` can hold without a field).
    full: String,
    /// The path relative to the enclosing scope, split on `.`.
    path: Vec<String>,
    /// The condition, its predicates' paths relative to a nested document.
    arg: Expr,
}

/// The part of `field` below the nested path `scope`, when it is below it.
fn below<'f>(field: &'f str, scope: &str) -> Option<&'f str> {
    field.strip_prefix(scope)?.strip_prefix('.')
}

impl Nested {
    /// `outer`: the enclosing nested node's path.
    fn compile(
        path: &str,
        arg: &Node,
        outer: Option<&str>,
        branch: &str,
    ) -> Result<Box<Nested>, crate::Error> {
        let relative = match outer {
            None => Some(path),
            Some(outer) => below(path, outer),
        };
        let relative = relative.filter(|r| !r.split('.').any(str::is_empty));
        let Some(relative) = relative else {
            let what = match outer {
                Some(outer) => format!("path {path:?} is not under its path {outer:?}"),
                None => format!("path {path:?} is not a field path"),
            };
            return Err(crate::Error::in_branch(
                branch,
                None,
                format!("has a nested node: {what}"),
            ));
        };
        Ok(Box::new(Nested {
            full: path.to_owned(),
            path: relative.split('.').map(str::to_owned).collect(),
            arg: Expr::compile(arg, Some(path), branch)?,
        }))
    }

    /// The first nested document of `scope` (in `event`) that makes `arg` hold.
    fn first<'a>(
        &self,
        scope: NestedDoc<'a>,
        event: &'a Value,
        numbers: &[usize],
        lookups: Lu<'a, '_>,
    ) -> Option<NestedDoc<'a>> {
        let found = for_each_nested_doc(scope, &self.path, &mut |doc| {
            if self.arg.eval(doc, event, numbers, lookups) {
                ControlFlow::Break(doc)
            } else {
                ControlFlow::Continue(())
            }
        });
        match found {
            ControlFlow::Break(doc) => Some(doc),
            ControlFlow::Continue(()) => None,
        }
    }

    /// The fields read, in full. Under a `not`, a nested document holds without any of its
    /// fields, so the projection must keep every document at the path: the path, whole.
    fn fields<'e>(&'e self, out: &mut Vec<&'e str>) {
        if self.arg.has_not() {
            out.push(&self.full);
        } else {
            self.arg.fields(out);
        }
    }
}

struct Entry<'e, 'a> {
    field: &'e str,
    op: &'static str,
    pattern: &'e str,
    value: Cow<'a, str>,
    under_or: bool,
}

impl CompiledRule {
    /// Pre-compile the rule: split field paths, parse IP literals, fold `eq_ci` literals,
    /// compile patterns. An invalid IP literal, or a wildcard on an ip field, is an error.
    pub fn new(ir: RuleIr) -> Result<CompiledRule, crate::Error> {
        let branches = ir
            .branches
            .iter()
            .map(|b| Expr::compile(&b.expr, None, &b.name))
            .collect::<Result<Vec<_>, _>>()?;
        let allowlist = ir
            .allowlist
            .iter()
            .map(|node| Expr::compile(node, None, "allowlist"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledRule {
            ir,
            branches,
            allowlist,
        })
    }

    /// The fields the rule reads (branches and allowlist), with repeats: what a projected
    /// parse must build for it (`event::Projection`).
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for expr in self.branches.iter().chain(&self.allowlist) {
            expr.fields(&mut out);
        }
        out
    }

    /// The first matching branch and its witness, or `None` when no branch matches or an
    /// allowlist entry drops the event.
    pub fn evaluate(&self, doc: &Value) -> Option<Match> {
        match self.judge(doc) {
            Verdict::Hit(m) => Some(m),
            _ => None,
        }
    }

    /// A hit, the allowlist entry that dropped it, or a miss. The entries are only looked at
    /// for events a branch matches, so they cost nothing on the others.
    pub fn judge(&self, doc: &Value) -> Verdict {
        self.judge_with(doc, &[], None)
    }

    /// [`CompiledRule::judge`] of a parsed line, whose JSON numbers typed fields read as
    /// numbers ([`crate::ParsedLine::numbers`]).
    pub fn judge_line(&self, line: &crate::ParsedLine<'_>) -> Verdict {
        self.judge_with(&line.doc, &line.numbers, None)
    }

    /// [`CompiledRule::judge_line`] with the line's lookups, shared by the rules of one
    /// engine judged on it ([`CompiledRule::number_fields`] with the engine's slots).
    pub(crate) fn judge_line_sharing<'a>(
        &self,
        line: &'a crate::ParsedLine<'_>,
        lookups: &Lookups<'a>,
    ) -> Verdict {
        self.judge_with(&line.doc, &line.numbers, Some(lookups))
    }

    /// Number the paths the rule reads at the event's scope among an engine's (`slots`), so
    /// that the rules judged on a line share its lookups ([`Lookups`]).
    pub(crate) fn number_fields(&mut self, slots: &mut FieldSlots) {
        for expr in self.branches.iter_mut().chain(&mut self.allowlist) {
            expr.number_fields(slots);
        }
    }

    fn judge_with<'a>(&self, doc: &'a Value, numbers: &[usize], lookups: Lu<'a, '_>) -> Verdict {
        let Some((branch, expr)) = self
            .branches
            .iter()
            .enumerate()
            .find(|(_, expr)| expr.holds(doc, numbers, lookups))
        else {
            return Verdict::Miss;
        };
        let allowed = |e: &Expr| e.holds(doc, numbers, lookups);
        if let Some(entry) = self.allowlist.iter().position(allowed) {
            return Verdict::Allowed(entry);
        }
        let mut entries = Vec::new();
        let scope = NestedDoc::Object(doc);
        expr.collect(scope, doc, numbers, lookups, false, &mut entries);
        let deciding = match entries.iter().position(|e| e.under_or) {
            Some(i) => Some(entries.swap_remove(i)),
            None => entries.pop(),
        };
        Verdict::Hit(Match {
            branch,
            witness: deciding.map(|e| Witness {
                field: e.field.to_owned(),
                op: e.op,
                pattern: e.pattern.to_owned(),
                value: e.value.into_owned(),
            }),
        })
    }
}

/// A line's shared lookups, or none (each predicate looks its field up).
type Lu<'a, 'l> = Option<&'l Lookups<'a>>;

/// An engine's paths read at the event's scope, numbered: the slots of [`Lookups`].
#[derive(Default)]
pub(crate) struct FieldSlots {
    by_path: HashMap<Vec<String>, u32>,
}

impl FieldSlots {
    fn slot(&mut self, path: &[String]) -> u32 {
        let next = self.by_path.len() as u32;
        *self.by_path.entry(path.to_vec()).or_insert(next)
    }
}

/// Room kept from line to line for [`Lookups`].
#[derive(Default)]
pub(crate) struct LookupRoom {
    /// The current line's stamp: a slot whose stamp is another line's is not looked up yet.
    stamp: u32,
    /// Per slot: (stamp, start, end) of its nodes in `nodes`.
    spans: Vec<(u32, u32, u32)>,
    /// Empty between lines: only its capacity is kept.
    nodes: Vec<&'static Value>,
}

/// One line's field lookups at the event's scope, shared by the rules judged on it: with many
/// rules, the same few fields (`event.category`, `process.name`...) are read by most of
/// them. A path's nodes are found once; its values are read from them in the same order as
/// [`for_each_value`] gives them (spec/ir.md "Field values").
pub(crate) struct Lookups<'a> {
    doc: &'a Value,
    stamp: u32,
    spans: RefCell<Vec<(u32, u32, u32)>>,
    nodes: RefCell<Vec<&'a Value>>,
}

impl<'a> Lookups<'a> {
    /// The lookups of the line whose event is `doc`, in the room of the lines before.
    pub(crate) fn new(doc: &'a Value, room: &mut LookupRoom) -> Lookups<'a> {
        room.stamp = room.stamp.wrapping_add(1);
        if room.stamp == 0 {
            room.spans.clear();
            room.stamp = 1;
        }
        Lookups {
            doc,
            stamp: room.stamp,
            spans: RefCell::new(std::mem::take(&mut room.spans)),
            nodes: RefCell::new(recycle(std::mem::take(&mut room.nodes))),
        }
    }

    /// The line is judged: its room is kept for the next.
    pub(crate) fn done(self, room: &mut LookupRoom) {
        room.spans = self.spans.into_inner();
        room.nodes = recycle(self.nodes.into_inner());
    }

    /// [`for_each_value`] of `path` (whose slot is `slot`) in the line's event.
    fn for_each_value<B>(
        &self,
        slot: u32,
        path: &[String],
        f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let (start, end) = {
            let mut spans = self.spans.borrow_mut();
            let slot = slot as usize;
            if spans.len() <= slot {
                spans.resize(slot + 1, (0, 0, 0));
            }
            let (stamp, start, end) = spans[slot];
            if stamp == self.stamp {
                (start as usize, end as usize)
            } else {
                let mut nodes = self.nodes.borrow_mut();
                let start = nodes.len();
                field_nodes(self.doc, path, &mut nodes);
                spans[slot] = (self.stamp, start as u32, nodes.len() as u32);
                (start, nodes.len())
            }
        };
        for k in start..end {
            let node = self.nodes.borrow()[k];
            flatten(node, f)?;
        }
        ControlFlow::Continue(())
    }
}

/// An emptied vector's room, for references of another lifetime.
fn recycle<'b>(mut nodes: Vec<&Value>) -> Vec<&'b Value> {
    nodes.clear();
    nodes.into_iter().map(|_| unreachable!()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_line;
    use proptest::prelude::*;

    const SEED: &str = include_str!("../tests/data/seed_ir.json");

    fn seed() -> CompiledRule {
        CompiledRule::new(RuleIr::from_json(SEED).unwrap()).unwrap()
    }

    fn eval_line(rule: &CompiledRule, line: &str) -> Option<Match> {
        let parsed = parse_line(line.as_bytes()).unwrap().unwrap();
        rule.evaluate(&parsed.doc)
    }

    fn witness(field: &str, op: &'static str, pattern: &str, value: &str) -> Option<Witness> {
        Some(Witness {
            field: field.into(),
            op,
            pattern: pattern.into(),
            value: value.into(),
        })
    }

    fn network_hit(value: &str) -> Option<Match> {
        Some(Match {
            branch: 0,
            witness: witness("destination.ip", "eq", "169.254.169.254", value),
        })
    }

    // The worked verdicts of spec/semantics.md and the operators one by one are shared
    // vectors: spec/vectors/*.jsonl, replayed by tests/vectors.rs.

    // ------------------------------------------------ spec/semantics.md, ip fields

    #[test]
    fn keyword_address_is_not_an_ip_field() {
        let r = seed();
        let line = r#"{"event":{"category":"network"},"destination":{"address":"::ffff:169.254.169.254"}}"#;
        assert_eq!(eval_line(&r, line), None);
    }

    // ------------------------------------------------ network branch, more

    #[test]
    fn network_dotted_keys_and_numbers() {
        let r = seed();
        assert_eq!(
            eval_line(
                &r,
                r#"{"event.category":"network","destination.ip":"169.254.169.254","destination.port":80}"#
            ),
            network_hit("169.254.169.254")
        );
        assert_eq!(
            eval_line(
                &r,
                r#"{"event":{"category":"Network"},"destination.ip":"169.254.169.254"}"#
            ),
            None,
            "event.category == is case-sensitive"
        );
    }

    #[test]
    fn network_exclusions() {
        let r = seed();
        let with_name = |name: &str| {
            format!(
                r#"{{"event":{{"category":"network"}},"destination":{{"ip":"169.254.169.254"}},"process":{{"name":{name}}}}}"#
            )
        };
        for excluded in [
            r#""waagent""#,
            r#""WAAGENT""#,
            r#""windowsazureguestagent.EXE""#,
            r#"["x","Amazon-SSM-Agent"]"#,
        ] {
            assert_eq!(eval_line(&r, &with_name(excluded)), None, "{excluded}");
        }
        for kept in [
            r#""curl""#,
            r#"null"#,
            r#"[]"#,
            r#"[null]"#,
            r#"{"x":"waagent"}"#,
            r#""waagent ""#,
            r#""cloud-init*""#,
            // ASCII-only folding: a Kelvin sign is not `k`, so this is not excluded.
            r#""goog\u212Ae_guest_agent""#,
            r#""wa\u0041gent2""#,
        ] {
            assert_eq!(
                eval_line(&r, &with_name(kept)),
                network_hit("169.254.169.254"),
                "{kept}"
            );
        }
    }

    #[test]
    fn network_witness_is_first_true_or_child() {
        let r = seed();
        // destination.ip comes first in the `or`, whatever the document order.
        let line = r#"{"url":{"domain":"metadata.google.internal"},"destination":{"address":"169.254.169.254","ip":"::ffff:169.254.169.254"},"event":{"category":["network"]}}"#;
        assert_eq!(eval_line(&r, line), network_hit("::ffff:169.254.169.254"));
        let line = r#"{"url":{"domain":"metadata.google.internal"},"destination":{"address":"169.254.169.254","ip":"10.1.1.1"},"event":{"category":["network"]}}"#;
        assert_eq!(
            eval_line(&r, line),
            Some(Match {
                branch: 0,
                witness: witness(
                    "destination.address",
                    "eq",
                    "169.254.169.254",
                    "169.254.169.254"
                ),
            })
        );
    }

    // ------------------------------------------------ process branch

    fn process_line(extra: &str) -> String {
        format!(r#"{{"event":{{"category":["process"],"type":["info","start"]}},{extra}}}"#)
    }

    #[test]
    fn process_args_hit_and_witness() {
        let r = seed();
        let line = process_line(
            r#""process":{"name":"curl","args":["curl","-s","http://169.254.169.254/latest/meta-data/"]}"#,
        );
        assert_eq!(
            eval_line(&r, &line),
            Some(Match {
                branch: 1,
                witness: witness(
                    "process.args",
                    "wildcard",
                    "*169.254.169.254*",
                    "http://169.254.169.254/latest/meta-data/"
                ),
            })
        );
    }

    #[test]
    fn process_event_type_must_contain_start() {
        let r = seed();
        let args = r#""process":{"args":["http://169.254.169.254/"]}"#;
        let line = |event: &str| format!(r#"{{"event":{event},{args}}}"#);
        assert!(eval_line(&r, &line(r#"{"category":"process","type":"start"}"#)).is_some());
        assert!(eval_line(
            &r,
            &line(r#"{"category":"process","type":["info","start"]}"#)
        )
        .is_some());
        assert_eq!(
            eval_line(&r, &line(r#"{"category":"process","type":"Start"}"#)),
            None
        );
        assert_eq!(
            eval_line(&r, &line(r#"{"category":"process","type":["end"]}"#)),
            None
        );
        assert_eq!(eval_line(&r, &line(r#"{"category":"process"}"#)), None);
        assert_eq!(eval_line(&r, &line(r#"{"type":"start"}"#)), None);
    }

    #[test]
    fn process_args_are_tested_element_by_element() {
        let r = seed();
        let line = process_line(r#""process":{"args":["169.254",".169.254"]}"#);
        assert_eq!(eval_line(&r, &line), None);
        let line = process_line(r#""process":{"args":[["x"],["169.254.169.254"]]}"#);
        assert!(eval_line(&r, &line).is_some());
    }

    #[test]
    fn process_command_line_witness_is_first_pattern_in_rule_order() {
        let r = seed();
        let line = process_line(
            r#""process":{"command_line":"curl -H 'Metadata-Flavor: Google' http://METADATA.google.internal/COMPUTEMETADATA/v1/"}"#,
        );
        assert_eq!(
            eval_line(&r, &line),
            Some(Match {
                branch: 1,
                witness: witness(
                    "process.command_line",
                    "wildcard",
                    "*computeMetadata*",
                    "curl -H 'Metadata-Flavor: Google' http://METADATA.google.internal/COMPUTEMETADATA/v1/"
                ),
            })
        );
    }

    #[test]
    fn process_escaped_json_still_matches() {
        let r = seed();
        let line = process_line(
            r#""process":{"command_line":"wget http:\/\/x\/latest\/meta-data\/i\u0061m"}"#,
        );
        assert_eq!(
            eval_line(&r, &line).unwrap().witness,
            witness(
                "process.command_line",
                "wildcard",
                "*latest/meta-data*",
                "wget http://x/latest/meta-data/iam"
            )
        );
    }

    #[test]
    fn process_exclusions() {
        let r = seed();
        let cmd =
            r#""command_line":"curl http://169.254.169.254/latest/dynamic/instance-identity""#;
        assert_eq!(
            eval_line(
                &r,
                &process_line(&format!(r#""process":{{"name":"Cloud-Init",{cmd}}}"#))
            ),
            None
        );
        // Missing process.name: `not ... in~` is true, so still a match.
        let hit = eval_line(&r, &process_line(&format!(r#""process":{{{cmd}}}"#))).unwrap();
        assert_eq!(hit.branch, 1);
        assert_eq!(
            hit.witness,
            witness(
                "process.command_line",
                "wildcard",
                "*169.254.169.254*",
                "curl http://169.254.169.254/latest/dynamic/instance-identity"
            )
        );
        // WaAppAgent.exe is only excluded in the network branch.
        assert!(eval_line(
            &r,
            &process_line(&format!(r#""process":{{"name":"waappagent.exe",{cmd}}}"#))
        )
        .is_some());
    }

    #[test]
    fn first_matching_branch_wins() {
        let r = seed();
        let line = r#"{"event":{"category":["process","network"],"type":"start"},"destination":{"ip":"169.254.169.254"},"process":{"args":["169.254.169.254"]}}"#;
        assert_eq!(eval_line(&r, line).unwrap().branch, 0);
        // Excluded from the network branch only: the process branch still matches.
        let line = r#"{"event":{"category":["process","network"],"type":"start"},"destination":{"ip":"169.254.169.254"},"process":{"name":"WaAppAgent.exe","args":["169.254.169.254"]}}"#;
        assert_eq!(eval_line(&r, line).unwrap().branch, 1);
    }

    #[test]
    fn no_match_on_unrelated_events() {
        let r = seed();
        for line in [
            r#"{}"#,
            r#"{"event":{"category":"network"}}"#,
            r#"{"destination":{"ip":"169.254.169.254"}}"#,
            r#"{"event":{"category":"process","type":"start"},"process":{"command_line":"ls -la"}}"#,
        ] {
            assert_eq!(eval_line(&r, line), None, "{line}");
        }
    }

    // ------------------------------------------------ witness rules, general IR

    fn rule(branches: &str) -> CompiledRule {
        let text = format!(r#"{{"ir_version":1,"name":"t","branches":{branches}}}"#);
        CompiledRule::new(RuleIr::from_json(&text).unwrap()).unwrap()
    }

    fn pred(field: &str, field_type: &str, op: &str, values: &[&str]) -> String {
        format!(
            r#"{{"node":"pred","field":"{field}","field_type":"{field_type}","op":"{op}","values":{}}}"#,
            serde_json::to_string(values).unwrap()
        )
    }

    /// Rules that read the same paths in several ways, at the event's scope and in a nested
    /// document (`n.k` both), some under `not`, typed, and in an allowlist.
    fn sharing_rules() -> Vec<CompiledRule> {
        let nested = |arg: String| format!(r#"{{"node":"nested","path":"n","arg":{arg}}}"#);
        let branch = |expr: String| format!(r#"[{{"name":"b","expr":{expr}}}]"#);
        let or = |a: String, b: String| format!(r#"{{"node":"or","args":[{a},{b}]}}"#);
        let and = |a: String, b: String| format!(r#"{{"node":"and","args":[{a},{b}]}}"#);
        let not = |a: String| format!(r#"{{"node":"not","arg":{a}}}"#);
        let texts = [
            branch(or(
                pred("a.b", "keyword", "eq", &["x"]),
                pred("a.b", "keyword", "wildcard", &["*y*"]),
            )),
            branch(and(
                pred("a.b", "keyword", "eq_ci", &["X"]),
                not(pred("c", "keyword", "eq", &["1"])),
            )),
            branch(pred("a", "keyword", "exists", &[])),
            branch(or(
                nested(pred("n.k", "keyword", "eq", &["v"])),
                pred("n.k", "keyword", "eq", &["x"]),
            )),
            branch(pred("c", "long", "gte", &["2"])),
        ];
        let mut rules: Vec<CompiledRule> = texts.iter().map(|b| rule(b)).collect();
        let allowed = format!(
            r#"{{"ir_version":1,"name":"t","branches":{},"allowlist":[{}]}}"#,
            branch(pred("c", "keyword", "exists", &[])),
            pred("a.b", "keyword", "eq", &["x"])
        );
        rules.push(CompiledRule::new(RuleIr::from_json(&allowed).unwrap()).unwrap());
        let mut slots = FieldSlots::default();
        rules.iter_mut().for_each(|r| r.number_fields(&mut slots));
        rules
    }

    fn leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#""x""#.to_owned()),
            Just(r#""X""#.to_owned()),
            Just(r#""zyz""#.to_owned()),
            Just(r#""v""#.to_owned()),
            Just("1".to_owned()),
            Just("3".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
        ]
    }

    /// Events whose `a.b`, `c` and `n.k` come as objects, dotted keys, arrays, repeats.
    fn event() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            leaf(),
            prop::collection::vec(leaf(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
        ];
        let member = (
            prop::sample::select(vec!["a", "a.b", "c", "n", "n.k", "b"]),
            value,
            prop::sample::select(vec!["b", "k"]),
            0..3usize,
        )
            .prop_map(|(key, value, inner, shape)| match shape {
                0 => format!(r#""{key}":{value}"#),
                1 => format!(r#""{key}":{{"{inner}":{value}}}"#),
                _ => format!(r#""{key}":[{{"{inner}":{value}}},{{"{inner}":"x"}}]"#),
            });
        prop::collection::vec(member, 0..6).prop_map(|m| format!("{{{}}}", m.join(",")))
    }

    proptest! {
        /// Each rule's verdict and witness with the line's lookups shared by all rules (and
        /// their room reused from line to line) are its own.
        #[test]
        fn shared_lookups_give_each_rules_own_verdict(
            lines in prop::collection::vec(event(), 1..6)
        ) {
            let rules = sharing_rules();
            let mut room = LookupRoom::default();
            for line in &lines {
                let parsed = parse_line(line.as_bytes()).unwrap().unwrap();
                let lookups = Lookups::new(&parsed.doc, &mut room);
                for (k, rule) in rules.iter().enumerate() {
                    let own = rule.judge_line(&parsed);
                    prop_assert_eq!(
                        rule.judge_line_sharing(&parsed, &lookups),
                        own,
                        "rule {} on {}", k, line
                    );
                }
                lookups.done(&mut room);
            }
        }
    }

    #[test]
    fn lookups_start_afresh_when_the_stamp_wraps() {
        let rules = sharing_rules();
        let mut room = LookupRoom::default();
        let hit = parse_line(br#"{"a":{"b":"x"}}"#).unwrap().unwrap();
        let miss = parse_line(br#"{"a":{"b":"q"}}"#).unwrap().unwrap();
        let lookups = Lookups::new(&hit.doc, &mut room);
        assert_eq!(room_stamp(&lookups), 1);
        assert!(matches!(
            rules[0].judge_line_sharing(&hit, &lookups),
            Verdict::Hit(_)
        ));
        lookups.done(&mut room);
        // 2^32 - 2 lines later, none of which read `a.b`, the stamp comes round to 1 again:
        // what the first line found must not be taken for the new line's.
        room.stamp = u32::MAX - 1;
        Lookups::new(&miss.doc, &mut room).done(&mut room);
        let lookups = Lookups::new(&miss.doc, &mut room);
        assert_eq!(room_stamp(&lookups), 1);
        assert_eq!(rules[0].judge_line_sharing(&miss, &lookups), Verdict::Miss);
        lookups.done(&mut room);
    }

    fn room_stamp(lookups: &Lookups<'_>) -> u32 {
        lookups.stamp
    }

    #[test]
    fn allowlist_entries_drop_matches_and_name_the_first_entry() {
        let text = format!(
            r#"{{"ir_version":1,"name":"t","branches":[{{"name":"b","expr":{}}}],"allowlist":[{},{}]}}"#,
            pred("a", "keyword", "eq", &["1"]),
            pred("u", "keyword", "eq_ci", &["system"]),
            pred("p", "keyword", "wildcard", &["c:\\x\\*"]),
        );
        let r = CompiledRule::new(RuleIr::from_json(&text).unwrap()).unwrap();
        let judge = |line: &str| r.judge(&parse_line(line.as_bytes()).unwrap().unwrap().doc);
        assert!(matches!(judge(r#"{"a":"1"}"#), Verdict::Hit(_)));
        assert_eq!(judge(r#"{"a":"1","u":"SYSTEM"}"#), Verdict::Allowed(0));
        assert_eq!(
            judge(r#"{"a":"1","u":"SYSTEM","p":"C:\\X\\y"}"#),
            Verdict::Allowed(0)
        );
        assert_eq!(judge(r#"{"a":"1","p":"C:\\X\\y"}"#), Verdict::Allowed(1));
        // An entry alone is no verdict: the branch decides first.
        assert_eq!(judge(r#"{"a":"2","u":"system"}"#), Verdict::Miss);
        assert_eq!(
            r.evaluate(
                &parse_line(br#"{"a":"1","u":"system"}"#)
                    .unwrap()
                    .unwrap()
                    .doc
            ),
            None
        );
    }

    #[test]
    fn witness_of_plain_and_is_last_entry() {
        let r = rule(&format!(
            r#"[{{"name":"b","expr":{{"node":"and","args":[{},{}]}}}}]"#,
            pred("a", "keyword", "eq", &["1"]),
            pred("b", "keyword", "wildcard", &["x*", "*y"])
        ));
        let doc = serde_json::json!({"a": 1, "b": ["q", "xy"]});
        assert_eq!(
            r.evaluate(&doc),
            Some(Match {
                branch: 0,
                witness: witness("b", "wildcard", "x*", "xy"),
            })
        );
    }

    #[test]
    fn witness_of_lone_not_is_none() {
        let r = rule(&format!(
            r#"[{{"name":"b","expr":{{"node":"not","arg":{}}}}}]"#,
            pred("a", "keyword", "eq", &["1"])
        ));
        assert_eq!(
            r.evaluate(&serde_json::json!({})),
            Some(Match {
                branch: 0,
                witness: None
            })
        );
        assert_eq!(r.evaluate(&serde_json::json!({"a": "1"})), None);
    }

    #[test]
    fn witness_first_under_or_entry_wins() {
        // and(p1, or(and(p2, p3), p4), p5): entries p1, p2*, p3*, p5 → p2.
        let r = rule(&format!(
            r#"[{{"name":"b","expr":{{"node":"and","args":[{p1},{{"node":"or","args":[{{"node":"and","args":[{p2},{p3}]}},{p4}]}},{p5}]}}}}]"#,
            p1 = pred("p1", "keyword", "eq", &["v"]),
            p2 = pred("p2", "keyword", "eq_ci", &["A", "B"]),
            p3 = pred("p3", "keyword", "eq", &["v"]),
            p4 = pred("p4", "keyword", "eq", &["v"]),
            p5 = pred("p5", "keyword", "eq", &["v"]),
        ));
        let doc =
            serde_json::json!({"p1": "v", "p2": ["c", "b", "a"], "p3": "v", "p4": "v", "p5": "v"});
        assert_eq!(
            r.evaluate(&doc).unwrap().witness,
            witness("p2", "eq_ci", "B", "b")
        );
        // First `or` child false: the entry comes from p4.
        let doc = serde_json::json!({"p1": "v", "p2": "a", "p4": "v", "p5": "v"});
        assert_eq!(
            r.evaluate(&doc).unwrap().witness,
            witness("p4", "eq", "v", "v")
        );
    }

    #[test]
    fn bad_rules_are_rejected() {
        for branches in [
            format!(
                r#"[{{"name":"b","expr":{}}}]"#,
                pred("destination.ip", "ip", "eq", &["169.254.169.054"])
            ),
            format!(
                r#"[{{"name":"b","expr":{}}}]"#,
                pred("destination.ip", "ip", "wildcard", &["169.254.*"])
            ),
            format!(
                r#"[{{"name":"b","expr":{}}}]"#,
                pred("destination.ip", "ip", "starts_with", &["169.254."])
            ),
            format!(
                r#"[{{"name":"b","expr":{}}}]"#,
                pred("destination.ip", "ip", "cidr", &["169.254.0.0/33"])
            ),
            format!(
                r#"[{{"name":"b","expr":{}}}]"#,
                pred("x", "keyword", "cidr", &["not a block"])
            ),
            format!(
                r#"[{{"name":"b","expr":{}}}]"#,
                pred("x", "keyword", "exists", &["x"])
            ),
        ] {
            let text = format!(r#"{{"ir_version":1,"name":"t","branches":{branches}}}"#);
            let ir = RuleIr::from_json(&text).unwrap();
            assert!(
                matches!(CompiledRule::new(ir), Err(crate::Error::Rule(_))),
                "{branches}"
            );
        }
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;

    fn refusal(expr: &str) -> String {
        let text =
            format!(r#"{{"ir_version":1,"name":"t","branches":[{{"name":"b","expr":{expr}}}]}}"#);
        match CompiledRule::new(RuleIr::from_json(&text).unwrap()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{expr} compiled"),
        }
    }

    fn pred(field_type: &str, op: &str, values: &str) -> String {
        format!(
            r#"{{"node":"pred","field":"f","field_type":"{field_type}","op":"{op}","values":{values}}}"#
        )
    }

    fn expr(value: &str) -> String {
        format!(r#"{{"node":"expr","text":"t","expr":{value}}}"#)
    }

    #[test]
    fn typed_predicates_refuse_what_elasticsearch_would() {
        for (p, why) in [
            (
                pred("long", "eq", r#"["abc"]"#),
                r#"field "f": "abc" is not a long value"#,
            ),
            (
                pred("date", "gt", r#"["yesterday"]"#),
                r#""yesterday" is not a date value"#,
            ),
            (
                pred("boolean", "eq", r#"["yes"]"#),
                r#""yes" is not a boolean value"#,
            ),
            (
                pred("ip", "lt", r#"["10.0.0.01"]"#),
                r#""10.0.0.01" is not an ip value"#,
            ),
            (
                pred("double", "lt", r#"["1","2"]"#),
                "lt takes one value, not 2",
            ),
            (
                pred("long", "wildcard", r#"["8*"]"#),
                "wildcard is not allowed on a long field",
            ),
            (
                pred("integer", "regex", r#"["8"]"#),
                "regex is not allowed on an integer field",
            ),
            (
                pred("date", "eq_ci", r#"["x"]"#),
                "eq_ci is not allowed on a date field",
            ),
            (
                pred("ip", "regex", r#"["x"]"#),
                "regex is not allowed on an ip field",
            ),
            (pred("keyword", "regex", r#"["a&b"]"#), r#"regex "a&b": "#),
        ] {
            let err = refusal(&p);
            assert!(err.contains(why), "{err} lacks {why}");
        }
    }

    #[test]
    fn expressions_refuse_bad_arity_and_types() {
        let f = r#"{"field":"f","field_type":"keyword"}"#;
        let n = r#"{"field":"n","field_type":"long"}"#;
        for (value, why) in [
            (
                format!(r#"{{"fn":"length","args":[{f},{f}]}}"#),
                "length takes 1 arguments, not 2",
            ),
            (
                format!(r#"{{"fn":"length","args":[{n}]}}"#),
                "argument 1 of length must be a string, not a number",
            ),
            (
                format!(r#"{{"fn":"add","args":[{f},{{"lit":1}}]}}"#),
                "argument 1 of add must be a number, not a string",
            ),
            (
                format!(r#"{{"fn":"lt","args":[{f},{n}]}}"#),
                "lt compares a string with a number",
            ),
            (
                format!(r#"{{"fn":"like","args":[{f},{f}]}}"#),
                "argument 2 of like must be a string literal",
            ),
            (
                format!(r#"{{"fn":"cidr_match","args":[{f},{{"lit":"10.0.0.0/33"}}]}}"#),
                r#""10.0.0.0/33" is not a CIDR block"#,
            ),
            (
                r#"{"lit":"2017-13-01","type":"date"}"#.to_owned(),
                r#""2017-13-01" is not a date"#,
            ),
            (
                r#"{"lit":18446744073709551615}"#.to_owned(),
                "18446744073709551615 is out of range for a long",
            ),
            (
                format!(r#"{{"fn":"between","args":[{f},{{"lit":"a"}}]}}"#),
                "between takes 3 to 4 arguments, not 2",
            ),
        ] {
            let err = refusal(&expr(&value));
            assert!(
                err.starts_with(r#"rule error: branch "b" expression "t": "#),
                "{err}"
            );
            assert!(err.contains(why), "{err} lacks {why}");
        }
    }
}
