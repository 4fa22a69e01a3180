//! List: one page of a project's operations, filtered, each with why it waits; a filter on
//! `metadata.waitingReason`, which no store evaluates, is applied here over store pages.

use crate::*;

impl Engine {
    pub async fn list(
        &self,
        project: &Project,
        filter_text: &str,
        page_size: i64,
        page_token: &str,
    ) -> Result<Page> {
        let limit = match page_size {
            n if n < 0 => {
                return Err(Error::invalid(
                    "INVALID_PAGE_SIZE",
                    "pageSize must not be negative",
                ));
            }
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let filter = filter::parse(filter_text)
            .map_err(|e| Error::invalid("INVALID_FILTER", e.to_string()))?;
        let parent = project.resource_name();
        let after = match page_token {
            "" => None,
            token => Some(
                self.inner
                    .tokens
                    .decode(&parent, filter_text, token)
                    .ok_or_else(|| {
                        Error::invalid(
                            "INVALID_PAGE_TOKEN",
                            "pageToken is not valid for this parent and filter",
                        )
                    })?,
            ),
        };
        if let Some(expr) = filter.as_ref().filter(|f| f.mentions(Field::WaitingReason)) {
            return self
                .list_waiting(project, expr, filter_text, limit, after)
                .await;
        }
        // One extra row tells whether another page follows, so the last page has no token.
        let page = self
            .inner
            .store
            .list(ListQuery {
                project: project.clone(),
                filter,
                after,
                limit: limit + 1,
                scan_budget: self.inner.options.scan_budget,
            })
            .await?;
        let mut operations = page.operations;
        let cursor = if operations.len() > limit {
            operations.truncate(limit);
            let last = operations.last().expect("limit is at least 1");
            Some(Cursor {
                create_time: last.create_time,
                name: last.name.clone(),
            })
        } else {
            // The scan budget ran out first: the page is short and goes on after the last
            // row examined.
            page.resume
        };
        let next_page_token = cursor.map(|c| self.inner.tokens.encode(&parent, filter_text, &c));
        // Expired operations not yet swept are hidden; a page may then be short.
        operations.retain(|op| !self.expired(op));
        self.explain(&mut operations).await;
        Ok(Page {
            operations,
            next_page_token,
        })
    }

    /// A list page whose filter compares `metadata.waitingReason`, which storage does not
    /// know: storage is asked for what the rest of the filter keeps
    /// (`Expr::without_waiting_reason`), in batches, and the engine keeps what the whole
    /// filter matches once each operation's reason is known, examining at most
    /// [`WAITING_SCAN`] operations; when those run out first, the page is short and its token
    /// continues after the last one examined (docs/operations.md#filter).
    async fn list_waiting(
        &self,
        project: &Project,
        expr: &filter::Expr,
        filter_text: &str,
        limit: usize,
        mut after: Option<Cursor>,
    ) -> Result<Page> {
        let parent = project.resource_name();
        let asked = expr.without_waiting_reason();
        let batch = (limit + 1).max(WAITING_BATCH);
        let mut counts = demand::Counts::new();
        let mut operations = Vec::new();
        let mut examined = 0;
        let mut more = true;
        'pages: while operations.len() <= limit {
            if examined >= WAITING_SCAN {
                break;
            }
            let page = self
                .inner
                .store
                .list(ListQuery {
                    project: project.clone(),
                    filter: asked.clone(),
                    after: after.clone(),
                    limit: batch,
                    scan_budget: self.inner.options.scan_budget,
                })
                .await?;
            let resume = page.resume;
            more = resume.is_some() || page.operations.len() == batch;
            for mut op in page.operations {
                examined += 1;
                after = Some(Cursor {
                    create_time: op.create_time,
                    name: op.name.clone(),
                });
                op.waiting_reason = self.waiting(&op, &mut counts, false).await.0;
                let reason = op.waiting_reason.map_or("", |r| r.as_str());
                if !self.expired(&op) && expr.matches_waiting(&op, reason) {
                    operations.push(op);
                    if operations.len() > limit {
                        break 'pages;
                    }
                }
            }
            if let Some(resume) = resume {
                // The store's own scan ran out within this batch.
                examined += self.inner.options.scan_budget;
                after = Some(resume);
            }
            if !more {
                break;
            }
        }
        let cursor = if operations.len() > limit {
            operations.truncate(limit);
            operations.last().map(|last| Cursor {
                create_time: last.create_time,
                name: last.name.clone(),
            })
        } else if more {
            // The scan ran out first: the next page goes on after the last row examined.
            after
        } else {
            None
        };
        Ok(Page {
            operations,
            next_page_token: cursor.map(|c| self.inner.tokens.encode(&parent, filter_text, &c)),
        })
    }
}
