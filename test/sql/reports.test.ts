// The two metrics: the samples' known values, hand-made edge cases, and equality with the
// naive GROUP BY over employees after every kind of write (the counts are trigger-maintained).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { loadDirectory } from '../../src/load.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase } from '../support.ts'

const NAIVE_QUARTERS = `
  select d.department_name as department, j.job_name as job,
         count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 1)::int as q1,
         count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 2)::int as q2,
         count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 3)::int as q3,
         count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 4)::int as q4
    from data.employees e join data.departments d using (department_id) join data.jobs j using (job_id)
   where extract(year from e.hiring_date at time zone 'UTC') = $1
   group by d.department_id, j.job_id order by d.department_name, j.job_name, d.department_id, j.job_id`

describe('on the samples', async () => {
  const { sql } = await freshDatabase()
  await loadDirectory(sql, SAMPLE_DIR)

  test('departments above the mean in 2021, exactly', async () => {
    const rows = await sql`select * from departments_above_mean_2021`
    assert.deepEqual(rows.map((r) => [r.department, r.hired]), [['Support', 216], ['Engineering', 205], ['Human Resources', 201],
      ['Services', 200], ['Business Development', 185], ['Research and Development', 148], ['Marketing', 142]])
    assert.deepEqual([...await sql`select * from departments_above_mean(2021)`], [...rows])
    const [{ mean }] = await sql`select round(report.hiring_mean(2021), 1)::text as mean`
    assert.equal(mean, '136.9')
  })

  test('hires by quarter in 2021: 933 rows, equal to the naive query', async () => {
    const rows = await sql`select * from hires_by_quarter_2021`
    assert.equal(rows.length, 933)
    assert.deepEqual(Object.keys(rows[0]), ['department', 'job', 'q1', 'q2', 'q3', 'q4'])
    assert.deepEqual([...rows], [...await sql.unsafe(NAIVE_QUARTERS, [2021])])
    assert.deepEqual([...await sql`select * from hires_by_quarter(2021)`], [...rows])
  })

  test('mean_over => hiring uses the departments that hired; a bad option is 22023', async () => {
    const [{ all, hiring }] = await sql`select report.hiring_mean(2021) as all, report.hiring_mean(2021, 'hiring') as hiring`
    assert.ok(Number(hiring) >= Number(all))
    await assert.rejects(sql`select * from departments_above_mean(2021, mean_over => 'median')`, { code: '22023' })
  })
})

describe('edge cases', async () => {
  const { sql } = await freshDatabase()
  const ingest = (table: string, rows: unknown[]) => sql`call ingest_batch(${table}, ${sql.json(rows as never)})`
  await ingest('departments', [1, 2, 3, 4].map((id) => ({ department_id: id, department_name: ['Alpha', 'Beta', 'Gamma', 'Idle'][id - 1] })))
  await ingest('jobs', [{ job_id: 1, job_name: 'Analyst' }, { job_id: 2, job_name: 'Builder' }])
  let id = 1
  const hire = (department_id: number, hiring_date: string, job_id = 1) => ({ employee_id: id++, employee_name: `E${id}`, hiring_date, department_id, job_id })
  await ingest('employees', [
    hire(1, '2021-03-31T23:59:59Z'),          // Q1, last second
    hire(1, '2021-04-01T00:00:00Z'),          // Q2, first second
    hire(1, '2021-04-01T01:00:00+02:00'),     // 2021-03-31T23:00Z: Q1 in UTC
    hire(2, '2022-01-01T01:00:00+05:00'),     // 2021-12-31T20:00Z: Q4 2021
    hire(2, '2020-12-31T22:00:00-03:00'),     // 2021-01-01T01:00Z: Q1 2021
    hire(2, '2021-12-31T23:59:59.999999Z', 2),
    hire(3, '2021-06-15T12:00:00Z'),
    hire(3, '2021-07-15T12:00:00Z'),
    hire(1, '2021-09-30T12:00:00Z', 2),
  ])

  test('quarters and years of the UTC instant', async () => {
    assert.deepEqual([...await sql`select * from hires_by_quarter(2021)`], [
      { department: 'Alpha', job: 'Analyst', q1: 2, q2: 1, q3: 0, q4: 0 },
      { department: 'Alpha', job: 'Builder', q1: 0, q2: 0, q3: 1, q4: 0 },
      { department: 'Beta', job: 'Analyst', q1: 1, q2: 0, q3: 0, q4: 1 },
      { department: 'Beta', job: 'Builder', q1: 0, q2: 0, q3: 0, q4: 1 },
      { department: 'Gamma', job: 'Analyst', q1: 0, q2: 1, q3: 1, q4: 0 },
    ])
    assert.deepEqual([...await sql`select * from hires_by_quarter(2022)`], [])
  })

  test('the mean counts departments without hires; ties order by name', async () => {
    // 9 hires / 4 departments = 2.25: Alpha 4 and Beta 3 are above; Gamma 2 and Idle 0 are not.
    assert.deepEqual([...await sql`select * from departments_above_mean(2021)`], [
      { id: 1, department: 'Alpha', hired: 4 }, { id: 2, department: 'Beta', hired: 3 }])
    // Over the 3 hiring departments the mean is 3: only Alpha.
    assert.deepEqual((await sql`select * from departments_above_mean(2021, mean_over => 'hiring')`).map((r) => r.department), ['Alpha'])
    await ingest('employees', [hire(3, '2021-08-01T00:00:00Z')]) // Beta 3 and Gamma 3 tie
    assert.deepEqual((await sql`select * from departments_above_mean(2021)`).map((r) => [r.department, r.hired]), [['Alpha', 4], ['Beta', 3], ['Gamma', 3]])
  })

  test('department_hires: every department, 0 without hires, the same "above" as departments_above_mean', async () => {
    for (const meanOver of ['all', 'hiring']) {
      const all = await sql`select * from report.department_hires(2021, mean_over => ${meanOver})`
      assert.deepEqual(all.map((r) => r.department).sort(), ['Alpha', 'Beta', 'Gamma', 'Idle'])
      assert.deepEqual(all.find((r) => r.department === 'Idle'), { id: 4, department: 'Idle', hired: 0, above_mean: false })
      assert.deepEqual(all.filter((r) => r.above_mean).map(({ id, department, hired }) => ({ id, department, hired })),
        [...await sql`select * from departments_above_mean(2021, mean_over => ${meanOver})`], meanOver)
    }
    // No hires in the year: every department at 0, none above (the mean is null).
    assert.deepEqual((await sql`select * from report.department_hires(1999)`).map((r) => [r.hired, r.above_mean]), [[0, false], [0, false], [0, false], [0, false]])
  })

  test('hiring_years: each year with hires, its departments and jobs that hired, its quarters, equal to counting employees', async () => {
    const naive = await sql`select extract(year from hiring_date at time zone 'UTC')::int as year, count(*)::int as hires,
        count(distinct department_id)::int as departments, count(distinct job_id)::int as jobs,
        count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 1)::int as q1,
        count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 2)::int as q2,
        count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 3)::int as q3,
        count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 4)::int as q4
      from data.employees group by 1 order by 1`
    assert.deepEqual([...await sql`select * from report.hiring_years()`], [...naive])
    assert.deepEqual(naive.map((r) => r.year), [2021])
  })

  test('a year with no hires gives no rows', async () => {
    assert.deepEqual([...await sql`select * from departments_above_mean(1999)`], [])
    assert.equal((await sql`select report.hiring_mean(1999) as m`)[0].m, null)
  })

  test('the counts follow every write: update, delete, truncate, restore-style upserts', async () => {
    const same = async () => assert.deepEqual([...await sql`select * from hires_by_quarter(2021)`], [...await sql.unsafe(NAIVE_QUARTERS, [2021])])
    await sql`update data.employees set hiring_date = '2021-11-11T00:00:00Z', job_id = 2 where employee_id = 1`
    await same()
    await sql`delete from data.employees where employee_id in (2, 3)`
    await same()
    await sql`insert into data.employees values (100, 'Direct', '2021-05-05T00:00:00Z', 4, 1) on conflict (employee_id) do update set hiring_date = excluded.hiring_date`
    await sql`insert into data.employees values (100, 'Direct', '2021-10-05T00:00:00Z', 4, 2) on conflict (employee_id) do update set hiring_date = excluded.hiring_date, job_id = excluded.job_id`
    await same()
    await sql.begin(async (tx) => {
      await tx`truncate data.employees`
      await tx`insert into data.employees values (200, 'After truncate', '2021-02-02T00:00:00Z', 1, 1)`
    })
    await same()
    assert.equal((await sql`select count(*)::int as n from hires_by_quarter(2021)`)[0].n, 1)
    // A year whose hires were all deleted is no longer listed (its counts stay as 0 rows).
    assert.deepEqual([...await sql`select year, hires from report.hiring_years()`], [{ year: 2021, hires: 1 }])
  })
})

describe('concurrent writers', async () => {
  const { sql } = await freshDatabase()
  await sql`insert into data.departments select i, 'D' || i from generate_series(1, 4) i`
  await sql`insert into data.jobs select i, 'J' || i from generate_series(1, 50) i`

  test('plain INSERTs from 4 sessions at once do not deadlock on the per-quarter counts', async () => {
    // Statements of different sizes over overlapping (year, department, job) keys: before
    // the counts were upserted in key order, their hash orders differed and they deadlocked.
    const writer = async (w: number) => {
      let first = 1 + w * 100_000
      for (let s = 0; s < 25; s++) {
        const size = 20 + ((s * 37 + w * 11) % 400)
        await sql`insert into data.employees
          select id, 'E' || id, make_timestamptz(2019 + (id * 7) % 5, 1 + (id * 5) % 12, 1, 0, 0, 0, 'UTC'), 1 + (id * 3) % 4, 1 + (id * 13) % 50
            from generate_series(${first}::int, ${first + size - 1}::int) id`
        first += size
      }
    }
    await Promise.all([0, 1, 2, 3].map(writer))
    for (const year of [2019, 2021, 2023]) assert.deepEqual([...await sql`select * from hires_by_quarter(${year})`], [...await sql.unsafe(NAIVE_QUARTERS, [year])])
  })
})
