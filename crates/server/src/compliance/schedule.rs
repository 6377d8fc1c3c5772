//! Report periods and delivery retries: pure arithmetic on the clock's time (ADR 0029).

use chrono::{DateTime, Datelike, Duration, Months, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How often an org's report is delivered. Periods are aligned in UTC: days at midnight, weeks
/// on Monday, months on the 1st.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Daily,
    Weekly,
    Monthly,
}

/// A half-open period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
            Schedule::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<Schedule> {
        [Schedule::Daily, Schedule::Weekly, Schedule::Monthly].into_iter().find(|s| s.as_str() == text)
    }

    /// The start of the period `at` falls in.
    fn period_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let day = at.date_naive();
        let start = match self {
            Schedule::Daily => day,
            Schedule::Weekly => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
            Schedule::Monthly => day.with_day(1).unwrap_or(day),
        };
        start.and_time(NaiveTime::MIN).and_utc()
    }

    fn period_from(self, from: DateTime<Utc>) -> Period {
        let to = match self {
            Schedule::Daily => from + Duration::days(1),
            Schedule::Weekly => from + Duration::weeks(1),
            Schedule::Monthly => from.checked_add_months(Months::new(1)).unwrap_or(from + Duration::days(31)),
        };
        Period { from, to }
    }

    /// The period to deliver next, if one is complete at `now`: the one after `delivered_until`,
    /// or, before the first delivery, the last complete one (earlier history is not backfilled).
    pub fn due(self, delivered_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Period> {
        let next = match delivered_until {
            Some(until) => self.period_from(self.period_start(until)),
            None => {
                let current = self.period_start(now);
                let previous = self.period_start(current - Duration::seconds(1));
                self.period_from(previous)
            }
        };
        (next.to <= now).then_some(next)
    }
}

/// How long to wait after the `attempts`-th failed delivery: one minute, doubling, at most an hour.
pub fn retry_after(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 6)).unwrap_or(6);
    Duration::minutes(1 << doublings).min(Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_period_due_follows_the_last_delivered_or_is_the_last_complete_one() {
        // 2026-12-09 is a Wednesday.
        let now = at(2026, 12, 9, 10);
        let cases = [
            (Schedule::Daily, None, Some((at(2026, 12, 8, 0), at(2026, 12, 9, 0)))),
            (Schedule::Daily, Some(at(2026, 12, 8, 0)), Some((at(2026, 12, 8, 0), at(2026, 12, 9, 0)))),
            (Schedule::Daily, Some(at(2026, 12, 9, 0)), None),
            (Schedule::Weekly, None, Some((at(2026, 11, 30, 0), at(2026, 12, 7, 0)))),
            (Schedule::Weekly, Some(at(2026, 12, 7, 0)), None),
            (Schedule::Weekly, Some(at(2026, 11, 23, 0)), Some((at(2026, 11, 23, 0), at(2026, 11, 30, 0)))),
            (Schedule::Monthly, None, Some((at(2026, 11, 1, 0), at(2026, 12, 1, 0)))),
            (Schedule::Monthly, Some(at(2026, 12, 1, 0)), None),
            (Schedule::Monthly, Some(at(2026, 1, 1, 0)), Some((at(2026, 1, 1, 0), at(2026, 2, 1, 0)))),
        ];
        for (schedule, delivered_until, expected) in cases {
            let due = schedule.due(delivered_until, now).map(|p| (p.from, p.to));
            assert_eq!(due, expected, "{schedule:?} after {delivered_until:?}");
        }
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let minutes: Vec<i64> = (1..=9).map(|n| retry_after(n).num_minutes()).collect();
        assert_eq!(minutes, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn schedules_read_as_they_are_written() {
        for schedule in [Schedule::Daily, Schedule::Weekly, Schedule::Monthly] {
            assert_eq!(Schedule::parse(schedule.as_str()), Some(schedule));
        }
        assert_eq!(Schedule::parse("hourly"), None);
    }
}
