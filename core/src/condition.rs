//! Conditions: a small boolean expression language over events (stub).
