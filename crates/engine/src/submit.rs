//! Submit: a submission checked and turned into a PENDING operation (`Engine::prepare`),
//! written with the store's request-id dedup and queue limit (`Engine::insert`), and
//! announced; `Engine::create` also serves retries.

use crate::*;

/// A request to create an operation (the submit extension).
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub op_type: String,
    pub description: String,
    pub priority: Option<i64>,
    pub request_id: Option<String>,
    pub operation_id: Option<String>,
    pub payload: Option<serde_json::Value>,
    pub script_uri: String,
    pub destination_uris: Vec<String>,
    pub max_attempts: Option<i64>,
    pub timeout: Option<Duration>,
    /// Groups operations of one type for the type's `key_concurrency`
    /// (docs/projects.md#concurrency-keys): 1 to 256 bytes, or `None` (not limited).
    pub concurrency_key: Option<String>,
    /// Not leased before this time (docs/operations.md#delayed-start).
    pub schedule_time: Option<Timestamp>,
    /// Not started this long after `schedule_time` (or the creation), the operation fails
    /// instead; more than zero.
    pub start_timeout: Option<Duration>,
    /// The schedule whose firing submits it (docs/schedules.md); set by the scheduler only.
    pub schedule: Option<String>,
    /// The operation it is a child of (docs/operations.md#parents-and-children): of the same
    /// project, PENDING or RUNNING, at depth below `MAX_DEPTH`.
    pub parent: Option<Name>,
}

impl Engine {
    /// Queues a new operation (or returns the one a repeated `request_id` created).
    #[tracing::instrument(
        name = "engine.submit",
        skip_all,
        fields(
            longrun.project = project.as_str(),
            longrun.operation.type = s.op_type.as_str(),
            longrun.operation.name = tracing::field::Empty,
        )
    )]
    pub async fn submit(&self, project: &Project, s: Submission) -> Result<Operation> {
        self.create(project, s, None).await
    }

    /// Queues a new operation from `s`, the retry of `retry_of` when one is named
    /// ([`Engine::retry`]), in the span of the call that asked.
    pub(crate) async fn create(
        &self,
        project: &Project,
        s: Submission,
        retry_of: Option<Name>,
    ) -> Result<Operation> {
        let mut new = self.prepare(project, s)?;
        new.operation.retry_of = retry_of;
        self.place(std::slice::from_mut(&mut new)).await?;
        self.insert(project, new).await
    }

    /// The operation a submission would create, checked as submit checks it; nothing is
    /// written. Schedules check their operation with it (docs/schedules.md).
    pub(crate) fn prepare(&self, project: &Project, s: Submission) -> Result<NewOperation> {
        let invalid = |message: String| Error::invalid("INVALID_SUBMISSION", message);
        if s.op_type.trim().is_empty() {
            return Err(invalid("type is required".into()));
        }
        limits::check("type", &s.op_type, limits::TYPE)?;
        limits::check("description", &s.description, limits::DESCRIPTION)?;
        let priority = s
            .priority
            .unwrap_or(i64::from(longrun_types::operation::DEFAULT_PRIORITY));
        if !(i64::from(MIN_PRIORITY)..=i64::from(MAX_PRIORITY)).contains(&priority) {
            return Err(invalid(format!(
                "priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, not {priority}"
            )));
        }
        let task_type = self.task_type(&s.op_type).clone();
        for key in &task_type.required_payload_keys {
            if s.payload
                .as_ref()
                .and_then(|p| p.get(key))
                .is_none_or(serde_json::Value::is_null)
            {
                return Err(invalid(format!(
                    "payload.{key} is required: operations of type {} use it",
                    s.op_type
                )));
            }
        }
        let max_attempts = s.max_attempts.unwrap_or(i64::from(task_type.max_attempts));
        if !(1..=1000).contains(&max_attempts) {
            return Err(invalid(format!(
                "maxAttempts must be between 1 and 1000, not {max_attempts}"
            )));
        }
        if let Some(id) = &s.request_id {
            if id.is_empty() {
                return Err(invalid(format!(
                    "requestId must be 1 to {} bytes",
                    limits::REQUEST_ID
                )));
            }
            limits::check("requestId", id, limits::REQUEST_ID)?;
        }
        if s.start_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid(
                "INVALID_START_TIMEOUT",
                "startTimeout must be more than zero",
            ));
        }
        if let Some(key) = &s.concurrency_key {
            if key.is_empty() {
                return Err(invalid(format!(
                    "concurrencyKey must be 1 to {MAX_CONCURRENCY_KEY} bytes"
                )));
            }
            limits::check("concurrencyKey", key, MAX_CONCURRENCY_KEY)?;
            longrun_store::storable_text("concurrencyKey", key)?;
        }
        if let Some(parent) = &s.parent
            && parent.project() != *project
        {
            return Err(Error::ParentElsewhere {
                parent: parent.clone(),
                project: project.to_string(),
            });
        }
        let name = match &s.operation_id {
            Some(id) => Name::new(project, id).map_err(|e| match e {
                NameError::TooLong(too_long) => Error::TooLong(too_long.of("operationId")),
                NameError::Invalid(why) => invalid(why),
            })?,
            None => Name::generate(project),
        };
        let now = self.now();
        let mut op = Operation::new(name, s.op_type, now);
        op.description = s.description;
        op.priority = priority as i32;
        op.max_attempts = max_attempts as i32;
        op.request_id = s.request_id;
        op.concurrency_key = s.concurrency_key;
        op.schedule_time = s.schedule_time;
        op.start_timeout_ms = s
            .start_timeout
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1));
        op.schedule = s.schedule;
        op.parent = s.parent;
        op.script_uri = s.script_uri;
        op.destination_uris = s.destination_uris;
        let timeout = match (s.timeout, task_type.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        op.deadline = timeout.map(|t| now.plus_millis(t.as_millis() as i64));
        Ok(NewOperation {
            operation: op,
            payload: s
                .payload
                .unwrap_or(serde_json::Value::Object(Default::default())),
            max_queued: self.inner.options.max_queued,
        })
    }

    /// Places each new operation that names a parent in its tree: the parent must exist and
    /// be PENDING or RUNNING (`ParentClosed`; the store checks it again in the insert's
    /// transaction), and the child's depth at most `MAX_DEPTH`. Each parent is read once.
    async fn place(&self, news: &mut [NewOperation]) -> Result<()> {
        let mut parents: HashMap<Name, Operation> = HashMap::new();
        for new in news.iter_mut() {
            let Some(name) = new.operation.parent.clone() else {
                continue;
            };
            let parent = match parents.get(&name) {
                Some(parent) => parent,
                None => {
                    let parent = match self.inner.store.get(&name).await? {
                        Some(op) if matches!(op.state, State::Pending | State::Running) => op,
                        _ => return Err(Error::ParentClosed(name)),
                    };
                    parents.entry(name).or_insert(parent)
                }
            };
            if parent.depth() >= MAX_DEPTH {
                return Err(Error::invalid(
                    "TREE_TOO_DEEP",
                    format!(
                        "parent {} is at depth {}: a tree holds at most {MAX_DEPTH} levels",
                        parent.name,
                        parent.depth()
                    ),
                ));
            }
            new.operation.ancestors = parent.ancestors + 1;
        }
        Ok(())
    }

    /// Inserts what [`Engine::prepare`] made and announces it.
    async fn insert(&self, project: &Project, new: NewOperation) -> Result<Operation> {
        let inserted = self
            .write(Write::Insert, self.inner.store.insert(new))
            .await;
        if let Ok(Inserted::Created(op) | Inserted::Existing(op)) = &inserted {
            tracing::Span::current().record("longrun.operation.name", op.name.as_str());
        }
        let mut op = self.inserted(inserted.map_err(|e| insert_error(project, e))?);
        self.explain(std::slice::from_mut(&mut op)).await;
        Ok(op)
    }

    /// The operation of an insert's outcome; a created one is announced and wakes the
    /// lease requests waiting for work.
    fn inserted(&self, inserted: Inserted) -> Operation {
        match inserted {
            Inserted::Created(op) => {
                self.committed(Change::Created(op.clone()));
                self.inner.demand.queued(&op);
                let now = self.now();
                if let Some(at) = op.schedule_time.filter(|t| *t > now) {
                    self.inner.next_due.send_if_modified(|next| {
                        let sooner = next.is_none_or(|n| at < n);
                        if sooner {
                            *next = Some(at);
                        }
                        sooner
                    });
                }
                self.inner.work.notify_waiters();
                op
            }
            Inserted::Existing(op) => op,
        }
    }

    /// Queues every submission of `batch` (1 to [`MAX_BATCH_SUBMIT`]) in one durable write
    /// (docs/operations.md#batch-submit), each as [`Engine::submit`] would, or none: an
    /// invalid submission is `InBatch` (its own error and its index), a taken
    /// `operationId` `AlreadyExists`, and the queue limit counts the whole batch
    /// (`QueueFull`). The operations are in `batch`'s order; a repeated `requestId` gives
    /// the operation it first created.
    #[tracing::instrument(
        name = "engine.batch_submit",
        skip_all,
        fields(longrun.project = project.as_str(), longrun.batch.size = batch.len())
    )]
    pub async fn submit_batch(
        &self,
        project: &Project,
        batch: Vec<Submission>,
    ) -> Result<Vec<Operation>> {
        if !(1..=MAX_BATCH_SUBMIT).contains(&batch.len()) {
            return Err(Error::invalid(
                "INVALID_SUBMISSION",
                format!(
                    "requests must hold 1 to {MAX_BATCH_SUBMIT} submit bodies, not {}",
                    batch.len()
                ),
            ));
        }
        let news = batch
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                self.prepare(project, s).map_err(|e| Error::InBatch {
                    index: i,
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut news = news;
        self.place(&mut news).await?;
        let inserted = self
            .write(Write::Insert, self.inner.store.insert_batch(news))
            .await
            .map_err(|e| insert_error(project, e))?;
        let mut ops: Vec<Operation> = inserted.into_iter().map(|i| self.inserted(i)).collect();
        self.explain(&mut ops).await;
        Ok(ops)
    }
}

/// A store's refusal of an insert as the API gives it.
fn insert_error(project: &Project, e: longrun_store::Error) -> Error {
    match e {
        longrun_store::Error::QueueFull { limit } => Error::QueueFull {
            project: project.to_string(),
            limit,
        },
        e => e.into(),
    }
}

/// The most submissions one batch submit takes.
pub const MAX_BATCH_SUBMIT: usize = 1000;
