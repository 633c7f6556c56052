// Schedule values from the environment are checked before anything is installed: 5-field
// cron schedules with fields in range, and a retention between 1 day and 100 years.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkCron, declaredJobs, retentionDaysFrom } from '../../src/schedule.ts'

test('RETENTION_DAYS: whole days from 1 to 36525', () => {
  assert.equal(retentionDaysFrom({}), 90)
  assert.equal(retentionDaysFrom({ RETENTION_DAYS: '' }), 90) // empty: unset, as every setting
  assert.equal(retentionDaysFrom({ RETENTION_DAYS: '1' }), 1)
  assert.equal(retentionDaysFrom({ RETENTION_DAYS: '36525' }), 36525)
  for (const bad of ['3000000', '36526', '0', '-1', '1.5', 'soon', ' ', '1e3']) {
    assert.throws(
      () => declaredJobs({ RETENTION_DAYS: bad }),
      /RETENTION_DAYS must be a whole number of days from 1 to 36525 \(100 years\)/,
      bad,
    )
  }
})

test('SCHEDULE_*: five cron fields, each in range', () => {
  for (const good of ['0 2 * * *', '*/5 * * * *', '0,30 8-18 * 1-12/2 1-5', '59 23 31 12 7'])
    assert.equal(checkCron('SCHEDULE_BACKUP', good), good)
  const cases: [string, RegExp][] = [
    ['0 0 2 * * * *', /7 fields/],
    ['* * * *', /4 fields/],
    ['60 * * * *', /minute 60 is outside 0-59/],
    ['0 24 * * *', /hour 24/],
    ['0 0 0 * *', /day of month 0/],
    ['0 0 * 13 *', /month 13/],
    ['0 0 * * 8', /day of week 8/],
    ['0 5-2 * * *', /range 5-2 is backwards/],
    ['*/0 * * * *', /step must be at least 1/],
    ['@reboot', /1 fields/],
    ['0 0 * * mon;drop', /day of week field/],
  ]
  for (const [bad, why] of cases) {
    assert.throws(
      () => declaredJobs({ SCHEDULE_HOUSEKEEPING: bad }),
      (err: Error) => /^SCHEDULE_HOUSEKEEPING must be a 5-field cron schedule/.test(err.message) && why.test(err.message),
      bad,
    )
  }
})
