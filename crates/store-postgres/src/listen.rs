//! The LISTEN connection: turns the table's notifications into store signals, and
//! reconnects (announcing a resync) when the connection drops.

use longrun_store::Signal;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::broadcast::Sender;
use tokio_postgres::{AsyncMessage, NoTls};

/// How often a quiet listener checks that its store still exists.
const CHECK: Duration = Duration::from_secs(1);

pub async fn run(config: tokio_postgres::Config, signals: Weak<Sender<Signal>>) {
    let mut first = true;
    while signals.upgrade().is_some() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    while let Some(Ok(message)) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        if let AsyncMessage::Notification(n) = message
                            && tx.send(n.payload().to_string()).is_err()
                        {
                            break;
                        }
                    }
                });
                if let Err(e) = client.batch_execute("LISTEN longrun").await {
                    tracing::warn!(error = %e, "cannot LISTEN; retrying");
                    driver.abort();
                } else {
                    if !first && let Some(signals) = signals.upgrade() {
                        let _ = signals.send(Signal::Resync);
                    }
                    first = false;
                    loop {
                        tokio::select! {
                            payload = rx.recv() => {
                                let (Some(payload), Some(signals)) = (payload, signals.upgrade()) else { break };
                                let _ = signals.send(if payload.is_empty() {
                                    Signal::Queued
                                } else {
                                    Signal::Changed(payload)
                                });
                            }
                            _ = tokio::time::sleep(CHECK) => if signals.upgrade().is_none() { break },
                        }
                    }
                    driver.abort();
                }
            }
            Err(e) => tracing::warn!(error = %e, "the LISTEN connection failed; retrying"),
        }
        if signals.upgrade().is_some() {
            tokio::time::sleep(CHECK).await;
        }
    }
}
