//! The closing table: each measured figure next to its target, and the problems seen on
//! the way (failed requests, wrong results) that make the run fail.

use crate::load::Report;

pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    target: Target,
}

impl Figure {
    fn met(&self) -> bool {
        match self.target {
            Target::AtLeast(t) => self.value >= t,
            Target::AtMost(t) => self.value <= t,
        }
    }
}

#[derive(Default)]
pub struct Summary {
    figures: Vec<Figure>,
    problems: Vec<String>,
}

impl Summary {
    pub fn figure(&mut self, name: &str, value: f64, unit: &'static str, target: Target) {
        self.figures.push(Figure {
            name: name.to_string(),
            value,
            unit,
            target,
        });
    }

    pub fn problem(&mut self, text: String) {
        println!("PROBLEM: {text}");
        self.problems.push(text);
    }

    /// Notes the failed requests of a run, if any.
    pub fn check(&mut self, run: &str, report: &Report) {
        if let Some(error) = &report.first_error {
            self.problem(format!(
                "{run}: {} requests failed; first: {error}",
                report.errors
            ));
        }
    }

    /// True when nothing went wrong; missed targets do not count.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn print(&self) {
        println!();
        println!("summary");
        let rows: Vec<[String; 4]> = self
            .figures
            .iter()
            .map(|f| {
                let (sign, target) = match f.target {
                    Target::AtLeast(t) => ("≥", t),
                    Target::AtMost(t) => ("≤", t),
                };
                [
                    f.name.clone(),
                    format!("{} {}", number(f.value), f.unit),
                    format!("{sign} {} {}", number(target), f.unit),
                    if f.met() { "PASS" } else { "MISS" }.to_string(),
                ]
            })
            .collect();
        let header = ["figure", "measured", "target", ""].map(String::from);
        let mut widths = [0; 4];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            println!("  {}", cells.join("  ").trim_end());
        }
        if !self.problems.is_empty() {
            println!();
            println!("{} problem(s):", self.problems.len());
            for problem in &self.problems {
                println!("  {problem}");
            }
        }
    }
}

/// Whole numbers for large values, two decimals for small ones.
fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
