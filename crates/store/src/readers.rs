//! The connections that serve reads (ADR 0035). sqlx's pool pings every connection it takes back, a round
//! trip to PostgreSQL (or to SQLite's connection thread) after every statement: in a profile, a fifth of a
//! PostgreSQL replica's CPU under a read load. These connections go back to the idle list as they are,
//! unless a statement on them failed (other than in reading its rows); one that idled for a second is
//! pinged before it is lent again, as [`crate::sql::pool_options`] does for the writers.
//!
//! A read cancelled midway leaves its connection consistent: sqlx finishes or discards what is in flight
//! at the start of the next statement, on SQLite in the connection's thread and on PostgreSQL by reading
//! up to the server's next ready message.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::Pool;
use sqlx::{Connection, Database, Either, Error, Execute, Executor, SqlStr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::sql::PING_AFTER_IDLE;

/// Where reads go: connections of their own, or the writers' pool where reading beside them gains
/// nothing (an in-memory SQLite database lives in its one connection).
pub(crate) enum Reads<DB: Database> {
    Own(Readers<DB>),
    Writers(Pool<DB>),
}

impl<DB: Database> Reads<DB> {
    pub(crate) async fn close(&self) {
        match self {
            Reads::Own(readers) => readers.close(),
            Reads::Writers(pool) => pool.close().await,
        }
    }
}

impl<DB: Database> fmt::Debug for Reads<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reads::Own(_) => "Reads::Own",
            Reads::Writers(_) => "Reads::Writers",
        })
    }
}

/// Up to `max` connections to one database, lent one statement at a time.
pub(crate) struct Readers<DB: Database>(Arc<Shared<DB>>);

struct Shared<DB: Database> {
    options: <DB::Connection as Connection>::Options,
    idle: Mutex<Vec<Idle<DB>>>,
    /// One permit per connection that may be lent at once.
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

struct Idle<DB: Database> {
    connection: DB::Connection,
    since: Instant,
}

/// A connection lent for one statement; it goes back to the idle list when dropped, unless broken.
struct Lent<DB: Database> {
    connection: Option<DB::Connection>,
    broken: bool,
    shared: Arc<Shared<DB>>,
    _permit: OwnedSemaphorePermit,
}

impl<DB: Database> Readers<DB> {
    /// Opens one connection now, so that a database that cannot be reached fails here.
    pub(crate) async fn connect(
        options: <DB::Connection as Connection>::Options,
        max: usize,
        acquire_timeout: Duration,
    ) -> Result<Readers<DB>, Error> {
        let connection = DB::Connection::connect_with(&options).await?;
        let idle = Mutex::new(vec![Idle { connection, since: Instant::now() }]);
        Ok(Readers(Arc::new(Shared { options, idle, permits: Arc::new(Semaphore::new(max)), acquire_timeout })))
    }

    /// Lends no connection any more; those lent are dropped when their statement ends.
    fn close(&self) {
        self.0.permits.close();
        self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn lend(&self) -> Result<Lent<DB>, Error> {
        let permit = tokio::time::timeout(self.0.acquire_timeout, self.0.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::PoolTimedOut)?
            .map_err(|_| Error::PoolClosed)?;
        let connection = match self.idle_connection().await {
            Some(connection) => connection,
            None => tokio::time::timeout(self.0.acquire_timeout, DB::Connection::connect_with(&self.0.options))
                .await
                .map_err(|_| Error::PoolTimedOut)??,
        };
        Ok(Lent { connection: Some(connection), broken: false, shared: self.0.clone(), _permit: permit })
    }

    /// The most recently used idle connection that still works, if any.
    async fn idle_connection(&self) -> Option<DB::Connection> {
        loop {
            let Idle { mut connection, since } = self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if since.elapsed() < PING_AFTER_IDLE || connection.ping().await.is_ok() {
                return Some(connection);
            }
        }
    }
}

impl<DB: Database> Lent<DB> {
    fn connection(&mut self) -> &mut DB::Connection {
        self.connection.as_mut().expect("a lent connection is there until dropped")
    }

    /// Keeps the connection out of the idle list after an error the database or the connection raised
    /// (a server ending the connection answers with an error of its own), not after one in reading rows.
    fn judge(&mut self, error: Option<&Error>) {
        self.broken |= error.is_some_and(|error| !in_reading_rows(error));
    }
}

fn in_reading_rows(error: &Error) -> bool {
    matches!(
        error,
        Error::RowNotFound
            | Error::TypeNotFound { .. }
            | Error::ColumnIndexOutOfBounds { .. }
            | Error::ColumnNotFound(_)
            | Error::ColumnDecode { .. }
            | Error::Decode(_)
    )
}

impl<DB: Database> Drop for Lent<DB> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take().filter(|_| !self.broken && !self.shared.permits.is_closed()) {
            let idle = Idle { connection, since: Instant::now() };
            self.shared.idle.lock().unwrap_or_else(|p| p.into_inner()).push(idle);
        }
    }
}

impl<'p, DB: Database> Executor<'p> for &'p Reads<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let readers = match self {
            Reads::Own(readers) => readers,
            Reads::Writers(pool) => return pool.fetch_many(query),
        };
        // Every caller collects the rows anyway (`fetch_all`, `fetch_optional`, `execute`), so they are
        // collected here, where the lent connection lives.
        let steps = async move {
            let mut lent = readers.lend().await?;
            let steps: Vec<_> = lent.connection().fetch_many(query).collect().await;
            lent.judge(steps.iter().find_map(|step| step.as_ref().err()));
            Ok::<_, Error>(stream::iter(steps))
        };
        stream::once(steps).try_flatten().boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let readers = match self {
            Reads::Own(readers) => readers,
            Reads::Writers(pool) => return pool.fetch_optional(query),
        };
        Box::pin(async move {
            let mut lent = readers.lend().await?;
            let row = lent.connection().fetch_optional(query).await;
            lent.judge(row.as_ref().err());
            row
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        let readers = match self {
            Reads::Own(readers) => readers,
            Reads::Writers(pool) => return pool.prepare_with(sql, parameters),
        };
        Box::pin(async move {
            let mut lent = readers.lend().await?;
            let statement = lent.connection().prepare_with(sql, parameters).await;
            lent.judge(statement.as_ref().err());
            statement
        })
    }
}
