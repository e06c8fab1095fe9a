//! `WHERE key IN (?, ?, ...)` lookups over many keys, split into chunks.
//!
//! SQLite limits a statement to 32,766 parameters (`SQLITE_MAX_VARIABLE_NUMBER`, 3.32+), and a huge
//! `IN` list makes a huge statement, so keys are sent in chunks of at most [`MAX_CHUNK`]. Each chunk is
//! padded with copies of its first key up to the next size in [`CHUNK_SIZES`], so only four statement
//! texts exist per query and all of them stay in the prepared-statement cache (`prepare_cached`).
//! Duplicates in an `IN` list do not duplicate rows.

use rusqlite::{Connection, Row, ToSql};

use super::error::StorageError;

/// Statement sizes (number of `?` in the list) that chunks are padded to.
const CHUNK_SIZES: [usize; 4] = [1, 10, 100, MAX_CHUNK];
/// Largest number of keys bound in one statement.
pub(crate) const MAX_CHUNK: usize = 500;

/// Runs `{select} WHERE {column} IN (...)` for all `keys` and maps every row with `map`.
///
/// `keys` are de-duplicated first (sorted), so a key repeated in the input yields its rows once.
/// Rows come back grouped by chunk, in no particular order inside a chunk.
pub(crate) fn select_in<K, R>(
    conn: &Connection,
    select: &str,
    column: &str,
    keys: &[K],
    mut map: impl FnMut(&Row<'_>) -> Result<R, StorageError>,
) -> Result<Vec<R>, StorageError>
where
    K: ToSql + Ord + Clone,
{
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let mut out = Vec::new();
    for chunk in keys.chunks(MAX_CHUNK) {
        let size = CHUNK_SIZES
            .iter()
            .copied()
            .find(|&s| s >= chunk.len())
            .unwrap_or(MAX_CHUNK);
        let sql = format!("{select} WHERE {column} IN ({})", placeholders(size));
        let mut stmt = conn.prepare_cached(&sql)?;
        let params: Vec<&dyn ToSql> = (0..size)
            .map(|i| chunk.get(i).unwrap_or(&chunk[0]) as &dyn ToSql)
            .collect();
        let mut rows = stmt.query(params.as_slice())?;
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
    }
    Ok(out)
}

/// `"?,?,...,?"` with `n` markers.
fn placeholders(n: usize) -> String {
    let mut s = "?,".repeat(n);
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_has_one_marker_per_key() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(3), "?,?,?");
    }

    #[test]
    fn select_in_returns_each_matching_row_once_across_chunks() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER, v INTEGER)")
            .unwrap();
        for k in 0..2000i64 {
            conn.execute("INSERT INTO t VALUES (?1, ?1 * 2)", [k])
                .unwrap();
        }
        // 1,200 distinct keys (3 chunks, the last one padded), every key twice, plus absent keys.
        let mut keys: Vec<i64> = (0..1200).flat_map(|k| [k, k]).collect();
        keys.extend(5000..5010);
        let mut got = select_in(&conn, "SELECT k, v FROM t", "k", &keys, |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
        .unwrap();
        got.sort_unstable();
        let want: Vec<(i64, i64)> = (0..1200).map(|k| (k, k * 2)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn select_in_with_no_keys_runs_no_query() {
        let conn = Connection::open_in_memory().unwrap();
        // No table `t`: a query would fail.
        let got = select_in(&conn, "SELECT k FROM t", "k", &[] as &[i64], |row| {
            Ok(row.get::<_, i64>(0)?)
        })
        .unwrap();
        assert!(got.is_empty());
    }
}
