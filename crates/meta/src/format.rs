//! The meta database's format version (key `f`), checked each time a
//! namespace is opened (decision 0015):
//!
//! - an empty database is stamped with [`FORMAT_VERSION`];
//! - a database with records but no version key was written before the
//!   version was kept: it is version 1, the format the version key was
//!   introduced with, and is stamped so;
//! - an older version is brought up to date by [`MIGRATIONS`], each step one
//!   transaction that also moves the stamp, so a crash between steps
//!   resumes at the next open;
//! - a newer version is refused: this binary would misread its records.

use crate::engine::{Engine, KvRead};
use crate::error::{MetaError, Result};
use crate::key;
use crate::records::{decode, encode};

/// The format this code reads and writes. Raise it (and add a step to
/// [`MIGRATIONS`], a fixture to `tests/fixtures/` and a line to
/// docs/formats/meta.md) with every change to a record or a key.
pub const FORMAT_VERSION: u32 = 2;

/// A migration step: rewrites a database of version `from` into version
/// `from + 1`, inside one write transaction.
pub(crate) struct Migration {
    /// The version it starts from.
    pub from: u32,
    /// What it changes, for the log.
    pub what: &'static str,
    /// The rewrite, in the same transaction as the stamp that follows it:
    /// a step is applied whole, once, or not at all.
    pub apply: fn(&mut dyn crate::KvWrite) -> Result<()>,
}

/// Every step from version 1 to [`FORMAT_VERSION`], in order.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    from: 1,
    what: "adds `b`, the holders of a blob shared by server-side copies",
    // Version 1 had no server-side copies, so every blob has one holder,
    // which is what a missing `b` says: nothing to rewrite. The number
    // still moves, so that a binary of version 1, which would queue a
    // shared blob for the collector when one of its files lets go of it,
    // refuses the database instead.
    apply: |_| Ok(()),
}];

/// The version stored in `r`: `None` for an empty database, 1 for one
/// written before the version was kept.
pub fn stored_version(r: &dyn KvRead) -> Result<Option<u32>> {
    if let Some(raw) = r.get(key::FORMAT)? {
        return Ok(Some(decode::<u32>(&raw)?));
    }
    let any = r.scan(&[], &[0xFF], 1)?;
    Ok((!any.is_empty()).then_some(1))
}

/// Makes the database in `engine` one of [`FORMAT_VERSION`]: stamps a new
/// or unversioned one, migrates an older one, refuses a newer one.
pub(crate) fn open<E: Engine>(engine: &E) -> Result<()> {
    upgrade(engine, FORMAT_VERSION, MIGRATIONS)
}

/// [`open`] towards version `newest` with `steps` (a test takes others).
fn upgrade<E: Engine>(engine: &E, newest: u32, steps: &[Migration]) -> Result<()> {
    let found = engine.read(|r| Ok((r.get(key::FORMAT)?.is_some(), stored_version(r)?)))?;
    let mut version = match found {
        (true, Some(v)) => v,
        (_, None) => {
            // New: stamped unless another opener stamped it meanwhile.
            return engine.write(|w| {
                if w.get(key::FORMAT)?.is_none() {
                    w.put(key::FORMAT, &encode(&newest)?)?;
                }
                Ok(())
            });
        }
        (false, Some(v)) => {
            tracing::info!(version = v, "meta database written before its format was numbered: stamped version {v}");
            engine.write(|w| w.put(key::FORMAT, &encode(&v)?))?;
            v
        }
    };
    if version > newest {
        return Err(MetaError::FormatTooNew { found: version, newest });
    }
    while version < newest {
        let Some(step) = steps.iter().find(|m| m.from == version) else {
            return Err(MetaError::Engine(format!("no migration of the meta database from format version {version}")));
        };
        engine.write(|w| {
            // Read again inside the transaction: another opener may have
            // taken this step already.
            if decode::<u32>(&w.get(key::FORMAT)?.unwrap_or_default()).ok() != Some(version) {
                return Ok(());
            }
            (step.apply)(w)?;
            w.put(key::FORMAT, &encode(&(version + 1))?)
        })?;
        tracing::info!(from = version, to = version + 1, what = step.what, "meta database migrated");
        version += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbEngine;

    #[test]
    fn a_new_database_is_stamped_an_unversioned_one_is_version_1_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = RedbEngine::open(&dir.path().join("m.redb")).unwrap();
        assert_eq!(e.read(|r| stored_version(r)).unwrap(), None);
        open(&e).unwrap();
        assert_eq!(e.read(|r| r.get(key::FORMAT)).unwrap(), Some(encode(&FORMAT_VERSION).unwrap()));

        e.write(|w| {
            w.delete(key::FORMAT)?;
            w.put(&key::volume("old"), b"x")
        })
        .unwrap();
        assert_eq!(e.read(|r| stored_version(r)).unwrap(), Some(1));
        open(&e).unwrap();
        // Stamped 1 as found, then migrated.
        assert_eq!(e.read(|r| r.get(key::FORMAT)).unwrap(), Some(encode(&FORMAT_VERSION).unwrap()));

        e.write(|w| w.put(key::FORMAT, &encode(&(FORMAT_VERSION + 1))?)).unwrap();
        let err = open(&e).unwrap_err();
        assert_eq!(err, MetaError::FormatTooNew { found: FORMAT_VERSION + 1, newest: FORMAT_VERSION });
        let said = err.to_string();
        assert!(!said.contains('\n') && said.contains("newer"), "{said}");
    }

    #[test]
    fn an_older_database_is_migrated_step_by_step_once() {
        // Two made-up steps: version 1 → 2 renames a key, 2 → 3 counts
        // volumes; each must run once, in order, and move the stamp.
        fn rename(w: &mut dyn crate::KvWrite) -> Result<()> {
            let v = w.get(b"old")?.ok_or_else(|| MetaError::NotFound("old".into()))?;
            w.delete(b"old")?;
            w.put(b"new", &v)
        }
        fn count(w: &mut dyn crate::KvWrite) -> Result<()> {
            let n = w.scan(b"v", b"w", usize::MAX)?.len() as u32;
            w.put(b"count", &encode(&n)?)
        }
        let steps = [
            Migration { from: 2, what: "count volumes", apply: count },
            Migration { from: 1, what: "rename a key", apply: rename },
        ];
        let dir = tempfile::tempdir().unwrap();
        let e = RedbEngine::open(&dir.path().join("m.redb")).unwrap();
        e.write(|w| {
            w.put(b"old", b"1")?;
            w.put(&key::volume("a"), b"x")
        })
        .unwrap();
        upgrade(&e, 3, &steps).unwrap();
        upgrade(&e, 3, &steps).unwrap();
        e.read(|r| {
            assert_eq!(r.get(b"old")?, None);
            assert_eq!(r.get(b"new")?, Some(b"1".to_vec()));
            assert_eq!(r.get(b"count")?, Some(encode(&1u32)?));
            assert_eq!(stored_version(r)?, Some(3));
            Ok(())
        })
        .unwrap();
        // A version no step starts from is an error, not a silent stamp.
        e.write(|w| w.put(key::FORMAT, &encode(&1u32)?)).unwrap();
        assert!(upgrade(&e, 3, &steps[..1]).is_err());
    }
}
