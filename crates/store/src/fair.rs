//! Fair leasing (docs/projects.md#fair-leasing): a lease takes one operation from each project with
//! PENDING work in turn, in project-id order starting after the project the previous lease
//! took from, and goes round again until it has `limit` operations or a whole round takes
//! nothing. Within a project the head of its queue goes first (priority, then age). So one
//! project's backlog delays another's operation by at most one operation per other
//! project with work, not by the backlog.
//!
//! Backends walk the projects with an index on the PENDING rows by project (the next
//! project after a name is one index probe), and keep the walk's state here.

use std::collections::{HashMap, HashSet};

/// The walk of one lease over the projects.
#[derive(Debug, Default)]
pub struct Rotation {
    /// The project visited last (`""`: before the first).
    after: String,
    /// Where the last operation was taken, for the next lease to start after.
    cursor: String,
    /// Projects visited since an operation was last taken: meeting one again means a
    /// whole round took nothing.
    idle: HashSet<String>,
    /// Projects with nothing more for this lease (no head, or at their running limit).
    closed: HashSet<String>,
    /// Projects at their export cap: only their other work may go.
    no_exports: HashSet<String>,
    /// Concurrency keys at their limit, by (project, type): only the type's other work may
    /// go (docs/projects.md#concurrency-keys).
    held_keys: HashMap<(String, String), Vec<String>>,
    /// Whether the walk went past the last project since it last started over.
    wrapped_empty: bool,
}

impl Rotation {
    /// A walk that starts after `cursor` (the previous lease's last project).
    pub fn new(cursor: String) -> Rotation {
        Rotation {
            after: cursor.clone(),
            cursor,
            ..Rotation::default()
        }
    }

    /// The name the next project must follow (`project > after`).
    pub fn after(&self) -> &str {
        &self.after
    }

    /// Takes the next project (`None`: there is none after [`Rotation::after`]); returns
    /// the project to try, `""` (closed: ask again, from the first project) after the
    /// last one, or `None` when the walk is over: nothing is left, or a whole round took
    /// nothing.
    pub fn visit(&mut self, next: Option<String>) -> Option<String> {
        match next {
            None if self.after.is_empty() || self.wrapped_empty => None,
            None => {
                self.wrapped_empty = true;
                self.after.clear();
                Some(String::new())
            }
            Some(project) => {
                if !self.idle.insert(project.clone()) {
                    return None;
                }
                self.after = project.clone();
                Some(project)
            }
        }
    }

    /// Whether `project` has nothing more for this lease.
    pub fn is_closed(&self, project: &str) -> bool {
        project.is_empty() || self.closed.contains(project)
    }

    pub fn close(&mut self, project: &str) {
        self.closed.insert(project.to_string());
    }

    pub fn exports_capped(&self, project: &str) -> bool {
        self.no_exports.contains(project)
    }

    pub fn cap_exports(&mut self, project: &str) {
        self.no_exports.insert(project.to_string());
    }

    /// The concurrency keys of `op_type` in `project` that are at their limit.
    pub fn held_keys(&self, project: &str, op_type: &str) -> &[String] {
        self.held_keys
            .get(&(project.to_string(), op_type.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// Every (type, key) of `project` at its limit, as two parallel lists.
    pub fn held(&self, project: &str) -> (Vec<String>, Vec<String>) {
        self.held_keys
            .iter()
            .filter(|((p, _), _)| p == project)
            .flat_map(|((_, t), keys)| keys.iter().map(move |k| (t.clone(), k.clone())))
            .unzip()
    }

    /// `key` of `op_type` in `project` is at its limit: this lease passes over its
    /// operations (what this lease starts only adds to the count).
    pub fn hold_key(&mut self, project: &str, op_type: &str, key: &str) {
        self.held_keys
            .entry((project.to_string(), op_type.to_string()))
            .or_default()
            .push(key.to_string());
    }

    /// An operation of `project` was taken: a new round of idleness starts.
    pub fn took(&mut self, project: &str) {
        self.idle.clear();
        self.wrapped_empty = false;
        self.cursor = project.to_string();
    }

    /// Where the next lease starts.
    pub fn into_cursor(self) -> String {
        self.cursor
    }
}

#[cfg(test)]
mod tests {
    use super::Rotation;

    /// Walks `projects` (each with `work[i]` operations) as a backend would, `limit` at a
    /// time, from `cursor`; returns what was taken and the new cursor.
    fn lease(
        projects: &[&str],
        work: &mut [usize],
        limit: usize,
        cursor: &str,
    ) -> (Vec<String>, String) {
        let mut fair = Rotation::new(cursor.to_string());
        let mut taken = Vec::new();
        while taken.len() < limit {
            let next = projects
                .iter()
                .enumerate()
                .find(|(i, p)| **p > fair.after() && work[*i] > 0)
                .map(|(_, p)| p.to_string());
            let Some(project) = fair.visit(next) else {
                break;
            };
            if fair.is_closed(&project) {
                continue;
            }
            let i = projects.iter().position(|p| *p == project).unwrap();
            work[i] -= 1;
            taken.push(project.clone());
            fair.took(&project);
        }
        (taken, fair.into_cursor())
    }

    #[test]
    fn projects_take_turns() {
        let projects = ["a", "b", "c"];
        let mut work = [5, 1, 2];
        let (taken, cursor) = lease(&projects, &mut work, 4, "");
        assert_eq!(taken, ["a", "b", "c", "a"]);
        let (taken, cursor) = lease(&projects, &mut work, 2, &cursor);
        assert_eq!(taken, ["c", "a"]);
        let (taken, _) = lease(&projects, &mut work, 10, &cursor);
        assert_eq!(taken, ["a", "a"]);
        assert_eq!(work, [0, 0, 0]);
        let (taken, _) = lease(&projects, &mut work, 10, "b");
        assert!(taken.is_empty());
    }
}
