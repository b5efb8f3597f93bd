//! Templates for paths and names (stub).
