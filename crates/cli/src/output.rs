//! What the CLI shows on a terminal or writes for a script: tables, one operation's
//! details, and the progress of an operation waited for.

use longrun_client::Client;
use longrun_types::Name;
use serde_json::Value;

/// The bar of `show_progress`, cleared by `finish_progress`.
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Follows the operation on the watch stream while `wait` waits, on stderr: a progress bar
/// (indicatif) on a terminal, otherwise a plain line whenever state, progress or stage
/// changes. Without a stream (an old server, a transport error) it shows nothing.
pub(crate) async fn show_progress(client: &Client, name: &Name) {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let filter = format!("name = \"{name}\"");
    let project = name.project();
    if let Ok(mut stream) = client.watch(project.as_str(), &filter, None, "").await {
        let mut last = String::new();
        while let Ok(Some(event)) = stream.next().await {
            if event.event != "operation" {
                continue;
            }
            let op = event.json();
            let m = &op["metadata"];
            let state = m["state"].as_str().unwrap_or_default().to_string();
            let progress = m["progress"].as_f64().unwrap_or(0.0);
            let stage = m["stages"]
                .as_array()
                .and_then(|s| s.last())
                .and_then(|s| s["displayName"].as_str())
                .unwrap_or_default()
                .to_string();
            let line = format!("{state} {:.0}% {stage}", progress * 100.0);
            if terminal {
                {
                    let mut bar = BAR.lock().expect("progress bar lock");
                    let bar = bar.get_or_insert_with(|| {
                        let bar = indicatif::ProgressBar::new(100);
                        bar.set_style(
                            indicatif::ProgressStyle::with_template(
                                "{spinner} [{bar:30}] {pos:>3}% {msg}",
                            )
                            .expect("a valid template")
                            .progress_chars("=> "),
                        );
                        bar.enable_steady_tick(std::time::Duration::from_millis(200));
                        bar
                    });
                    bar.set_position((progress * 100.0).round() as u64);
                    bar.set_message(format!("{state} {stage}"));
                }
            } else if line != last {
                eprintln!("{line}");
            }
            last = line;
        }
    }
    std::future::pending::<()>().await
}

/// Clears the progress bar, if one was shown.
pub(crate) fn finish_progress() {
    if let Some(bar) = BAR.lock().expect("progress bar lock").take() {
        bar.finish_and_clear();
    }
}

pub(crate) fn id(op: &Value) -> &str {
    let name = op["name"].as_str().unwrap_or_default();
    name.split_once("/operations/").map_or(name, |(_, id)| id)
}

pub(crate) fn print_table(operations: &[Value]) {
    let rows: Vec<[String; 6]> = operations
        .iter()
        .map(|op| {
            let m = &op["metadata"];
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            [
                id(op).to_string(),
                s("type"),
                s("state"),
                m["priority"].to_string(),
                s("createTime"),
                s("description"),
            ]
        })
        .collect();
    print_columns(
        ["ID", "TYPE", "STATE", "PRIORITY", "CREATED", "DESCRIPTION"],
        &rows,
    );
}

/// Prints `rows` under `header` in columns as wide as their widest cell.
pub(crate) fn print_columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let header = header.map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

pub(crate) fn print_details(op: &Value) {
    let m = &op["metadata"];
    println!("name:        {}", op["name"].as_str().unwrap_or_default());
    for key in [
        "state",
        "type",
        "description",
        "createTime",
        "updateTime",
        "startTime",
        "endTime",
        "parent",
    ] {
        if let Some(value) = m[key].as_str() {
            println!("{:<12} {value}", format!("{key}:"));
        }
    }
    println!("priority:    {}", m["priority"]);
    println!("attempt:     {}", m["attempt"]);
    if let Some(progress) = m["progress"].as_f64() {
        println!("progress:    {:.0}%", progress * 100.0);
    }
    for key in ["concurrencyKey", "retryOf", "scheduleTime", "scriptUri"] {
        if let Some(value) = m[key].as_str() {
            println!("{:<12} {value}", format!("{key}:"));
        }
    }
    if let Some(stages) = m["stages"].as_array().filter(|s| !s.is_empty()) {
        println!("stages:");
        for stage in stages {
            let units = |k: &str| match &stage[k] {
                Value::String(n) => n.clone(),
                Value::Number(n) => n.to_string(),
                _ => "0".into(),
            };
            println!(
                "  {}  {}/{}  {}",
                stage["displayName"].as_str().unwrap_or_default(),
                units("completeWorkUnits"),
                units("totalWorkUnits"),
                stage["description"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(uris) = m["destinationUris"].as_array().filter(|u| !u.is_empty()) {
        println!("destinations:");
        for uri in uris {
            println!("  {}", uri.as_str().unwrap_or_default());
        }
    }
    if let Some(notes) = m["notifications"].as_array().filter(|n| !n.is_empty()) {
        println!("notifications:");
        for note in notes {
            println!(
                "  {} {}: {}",
                note["severity"].as_str().unwrap_or_default(),
                note["topic"].as_str().unwrap_or_default(),
                note["detail"].as_str().unwrap_or_default()
            );
        }
    }
    println!("done:        {}", op["done"]);
    if let Some(error) = op.get("error") {
        println!(
            "error:       code {} {}",
            error["code"],
            error["message"].as_str().unwrap_or_default()
        );
        for detail in error["details"].as_array().into_iter().flatten() {
            println!("  {detail}");
        }
    }
    if let Some(response) = op.get("response") {
        print_json("response:", response);
    }
}

/// An operation's payload, as `describe` shows it (nothing when it had none).
pub(crate) fn print_payload(payload: &Value) {
    if !payload.is_null() {
        print_json("payload:", payload);
    }
}

/// `label`, then `value` as indented JSON.
fn print_json(label: &str, value: &Value) {
    println!("{label}");
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    for line in text.lines() {
        println!("  {line}");
    }
}
