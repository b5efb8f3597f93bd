//! `route`: names the route of each event by [conditions](crate::condition),
//! for the component's `multiplexing` selector to send it to that route's
//! channels.
//!
//! Routing is split the way Flume splits it (an interceptor sets a header, a
//! multiplexing selector maps it to channels): this processor evaluates the
//! conditions, in order, and writes the name of the matching route to
//! `field` (`route` by default); the selector already knows how to put an
//! event into the channels mapped to a value, with a `default` for the rest.
//! So a route works wherever a selector does (a source's inline chain or a
//! stage) and nothing new is needed in the runtime.
//!
//! With `mode: first` the first matching route wins. With `mode: all` an
//! event matching several routes is copied once per extra route (the body is
//! shared, the fields are cloned), each copy naming one route, in the
//! routes' order. An event matching none gets no `field` (any value it had
//! is removed) and goes to the selector's `default`.

use crate::condition::Condition;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use sluice_core::prelude::*;

/// Which routes an event takes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The first route whose condition holds.
    #[default]
    First,
    /// Every route whose condition holds (one copy of the event each).
    All,
}

/// The routes, in the order written.
#[derive(Debug, Default)]
pub struct Routes(pub Vec<(String, Condition)>);

impl<'de> Deserialize<'de> for Routes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Routes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping from route name to condition")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Routes, A::Error> {
                let mut routes: Vec<(String, Condition)> = Vec::new();
                while let Some((name, condition)) = m.next_entry::<String, Condition>()? {
                    if routes.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("route `{name}` is named twice")));
                    }
                    routes.push((name, condition));
                }
                Ok(Routes(routes))
            }
        }
        d.deserialize_map(V)
    }
}

/// Options of the `route` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Route name → condition, tried in the order written.
    pub routes: Routes,
    /// `first` (the first route that matches) or `all` (every route that
    /// matches, one copy of the event each).
    #[serde(default)]
    pub mode: Mode,
    /// The field that receives the route name; the selector's `field`.
    #[serde(default = "route_field")]
    pub field: String,
}

fn route_field() -> String {
    "route".into()
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.routes.0.is_empty() {
            problems.push(Problem::at(
                "routes",
                "name at least one route: `routes: {errors: '.level == \"error\"'}`",
            ));
        }
        for (name, _) in &self.routes.0 {
            if name.is_empty() {
                problems.push(Problem::at("routes", "a route name must not be empty"));
            }
        }
        problems.extend(crate::check_path("field", &self.field));
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Route {
            routes: self
                .routes
                .0
                .iter()
                .map(|(n, c)| (Value::from(n.as_str()), c.clone()))
                .collect(),
            all: self.mode == Mode::All,
            field: self.field.clone(),
            matched: Vec::new(),
        }))
    }
}

/// The `route` processor.
struct Route {
    /// Each route's name (as a ready value: cloning it shares its bytes) and
    /// condition.
    routes: Vec<(Value, Condition)>,
    all: bool,
    field: String,
    /// The routes the event being routed matched, reused.
    matched: Vec<usize>,
}

impl Processor for Route {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        if !self.all {
            for e in &mut batch.events {
                match self.routes.iter().find(|(_, c)| c.matches(e)) {
                    Some((name, _)) => e.insert(&self.field, name.clone()),
                    None => {
                        e.remove(&self.field);
                    }
                }
            }
            return;
        }
        let events = std::mem::take(&mut batch.events);
        let mut out = Vec::with_capacity(events.len());
        for mut e in events {
            self.matched.clear();
            self.matched.extend(
                self.routes
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, c))| c.matches(&e))
                    .map(|(i, _)| i),
            );
            let Some((&last, rest)) = self.matched.split_last() else {
                e.remove(&self.field);
                out.push(e);
                continue;
            };
            for &r in rest {
                let mut copy = e.clone();
                copy.insert(&self.field, self.routes[r].0.clone());
                out.push(copy);
            }
            e.insert(&self.field, self.routes[last].0.clone());
            out.push(e);
        }
        batch.events = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn routes(b: &Batch) -> Vec<String> {
        b.events
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    String::from_utf8_lossy(&e.body),
                    e.get("route")
                        .map(|v| v.to_text().into_owned())
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    const LEVELS: &str = "routes:\n  errors: '.level == \"error\"'\n  loud: 'len(.message) > 3'\n  warnings: '.level == \"warn\"'\n";

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config(LEVELS);
        assert!(c.validate().is_empty());
        let names: Vec<&str> = c.routes.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["errors", "loud", "warnings"], "the order written");
        assert!(!examples::<Config>("route").is_empty());
        let e = unknown_key::<Config>("routes: {a: 'true'}\nmodes: all");
        assert!(e.contains("did you mean `mode`"), "{e}");
        let e = unknown_key::<Config>("routes: {a: '.x =='}");
        assert!(e.contains("column"), "{e}");
        let e = unknown_key::<Config>("routes: {a: 'true', a: 'false'}");
        assert!(e.contains("twice") || e.contains("duplicate"), "{e}");
        let c: Config = config("routes: {}\nfield: 'a..b'");
        assert_eq!(c.validate().len(), 2);
    }

    #[test]
    fn first_match_wins_and_unmatched_lose_the_field() {
        let mut p = build::<Config>(LEVELS);
        let mut b = batch(&["e", "w", "loud!", "x", "warn-and-loud"]);
        for (i, l) in [(0, "error"), (1, "warn"), (4, "warn")] {
            b.events[i].insert("level", l);
        }
        b.events[3].insert("route", "stale");
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(
            routes(&b),
            [
                "e:errors",
                "w:warnings",
                "loud!:loud",
                "x:",
                "warn-and-loud:loud"
            ]
        );
        assert!(b.events[3].get("route").is_none());
    }

    #[test]
    fn all_matches_copy_the_event_per_route_in_order() {
        let mut p = build::<Config>(&format!("{LEVELS}mode: all\nfield: to"));
        let mut b = batch(&["warn-and-loud", "x", "e"]);
        b.events[0].insert("level", "warn");
        b.events[2].insert("level", "error");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let to: Vec<_> = b
            .events
            .iter()
            .map(|e| e.get("to").map(|v| v.to_text().into_owned()))
            .collect();
        assert_eq!(
            to,
            [
                Some("loud".into()),
                Some("warnings".into()),
                None,
                Some("errors".into())
            ]
        );
        assert_eq!(b.events[0].body, b.events[1].body);
    }
}
