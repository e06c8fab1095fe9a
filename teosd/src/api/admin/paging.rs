//! Paging of the admin list calls (ours, see `proto/teos/v2/tower_services.proto`): page sizes and the
//! opaque cursors handed to clients.
//!
//! `get_all_appointments` walks watched appointments (no tracker) in uuid order, then trackers in uuid
//! order. Its cursor says where the previous page stopped:
//! - empty: from the start;
//! - `0x00 ‖ uuid (20 bytes)`: watched appointments after `uuid`;
//! - `0x01`: trackers from the first;
//! - `0x01 ‖ uuid (20 bytes)`: trackers after `uuid`.
//!
//! `get_users` walks user ids in byte order; its cursor is the last id returned (33 bytes).
//!
//! `get_user_paged` walks one user's appointments in storage (row id) order; its cursor is the row id
//! of the last uuid returned (8 bytes, big-endian).

use teos_common::appointment::{AppointmentId, UserId};
use teos_common::constants::APPOINTMENT_ID_LEN;

/// Largest page served. A larger `limit` is lowered to this; `limit = 0` (no paging, rust-teos
/// behaviour) returns everything regardless, read [`ALL_BATCH`] items at a time.
pub const MAX_PAGE: u32 = 100_000;

/// Items per storage read when `get_all_appointments` is asked for everything (`limit = 0`): the
/// answer still holds every item (the API's contract, `proto/teos/v2/tower_services.proto`), but rows
/// are loaded and decoded one batch at a time, each batch in its own read transaction.
pub const ALL_BATCH: u32 = 1_000;

const WATCHED_TAG: u8 = 0;
const TRACKERS_TAG: u8 = 1;

/// How many items a request may get: `u32::MAX` for `limit = 0`, else `limit` capped at [`MAX_PAGE`].
pub fn page_size(limit: u32) -> u32 {
    if limit == 0 {
        u32::MAX
    } else {
        limit.min(MAX_PAGE)
    }
}

/// Where a `get_all_appointments` page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllCursor {
    /// Watched appointments after the given uuid (`None` = from the first), then trackers.
    Watched(Option<AppointmentId>),
    /// Trackers after the given uuid (`None` = from the first).
    Trackers(Option<AppointmentId>),
}

impl AllCursor {
    /// Parses a client's cursor. Errors: a message for `InvalidArgument` (not a cursor this server
    /// produces).
    pub fn decode(bytes: &[u8]) -> Result<AllCursor, &'static str> {
        const BAD: &str = "cursor is not a next_cursor of get_all_appointments";
        let Some((&tag, rest)) = bytes.split_first() else {
            return Ok(AllCursor::Watched(None));
        };
        let after = match rest.len() {
            0 => None,
            APPOINTMENT_ID_LEN => Some(AppointmentId::from_slice(rest).map_err(|_| BAD)?),
            _ => return Err(BAD),
        };
        match (tag, after) {
            (WATCHED_TAG, Some(uuid)) => Ok(AllCursor::Watched(Some(uuid))),
            (TRACKERS_TAG, after) => Ok(AllCursor::Trackers(after)),
            _ => Err(BAD),
        }
    }

    /// The bytes [`AllCursor::decode`] reads back.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, after) = match self {
            AllCursor::Watched(after) => (WATCHED_TAG, after),
            AllCursor::Trackers(after) => (TRACKERS_TAG, after),
        };
        let mut bytes = vec![tag];
        if let Some(uuid) = after {
            bytes.extend_from_slice(uuid.as_bytes());
        }
        bytes
    }
}

/// Parses a `get_users` cursor: empty = from the start, else the last user id of the previous page.
pub fn decode_user_cursor(bytes: &[u8]) -> Result<Option<UserId>, &'static str> {
    if bytes.is_empty() {
        return Ok(None);
    }
    UserId::from_slice(bytes)
        .map(Some)
        .map_err(|_| "cursor is not a next_cursor of get_users")
}

/// Parses a `get_user_paged` cursor: empty = from the start, else the row id after which to go on.
pub fn decode_user_appointments_cursor(bytes: &[u8]) -> Result<Option<i64>, &'static str> {
    if bytes.is_empty() {
        return Ok(None);
    }
    <[u8; 8]>::try_from(bytes)
        .map(|b| Some(i64::from_be_bytes(b)))
        .map_err(|_| "cursor is not a next_cursor of get_user_paged")
}

/// The bytes [`decode_user_appointments_cursor`] reads back.
pub fn encode_user_appointments_cursor(rowid: i64) -> Vec<u8> {
    rowid.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let uuid = AppointmentId::from_slice(&[7; 20]).unwrap();
        for cursor in [
            AllCursor::Watched(Some(uuid)),
            AllCursor::Trackers(None),
            AllCursor::Trackers(Some(uuid)),
        ] {
            assert_eq!(AllCursor::decode(&cursor.encode()), Ok(cursor));
        }
        assert_eq!(AllCursor::decode(&[]), Ok(AllCursor::Watched(None)));
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in [&[0u8][..], &[2u8; 21][..], &[0u8; 5][..], &[1u8; 22][..]] {
            assert!(AllCursor::decode(bad).is_err(), "{bad:?}");
        }
        assert!(decode_user_cursor(&[2u8; 32]).is_err());
        assert!(decode_user_cursor(&[9u8; 33]).is_err(), "not a valid key");
        assert_eq!(decode_user_cursor(&[]), Ok(None));
        assert!(decode_user_appointments_cursor(&[1u8; 7]).is_err());
        assert_eq!(decode_user_appointments_cursor(&[]), Ok(None));
        assert_eq!(
            decode_user_appointments_cursor(&encode_user_appointments_cursor(-3)),
            Ok(Some(-3))
        );
    }

    #[test]
    fn zero_limit_means_everything_and_large_limits_are_capped() {
        assert_eq!(page_size(0), u32::MAX);
        assert_eq!(page_size(5), 5);
        assert_eq!(page_size(u32::MAX), MAX_PAGE);
    }
}
