-- 0005: the exact-data policy: Unicode White_Space is trimmed, invisible and bidi controls
-- are bad_text, every RFC 3339 offset is read, and rows PostgreSQL cannot read cost only
-- themselves (bad_encoding, unreadable).
update data.reason_codes set description = 'absent, JSON null, or empty after trimming Unicode White_Space: all fields are mandatory'
 where code = 'missing:<field>';
update data.reason_codes set description = 'a name that is not a string, or contains a control character (Cc), U+2028, U+2029, or a bidi control (U+202A-U+202E, U+2066-U+2069)'
 where code = 'bad_text:<field>';
update data.reason_codes set description = 'not an RFC 3339 date-time with seconds and an explicit offset (up to +-23:59), a fraction finer than a microsecond, not a real calendar instant, or outside years 0001-9999 in UTC'
 where code = 'bad_datetime:<field>';
insert into data.reason_codes (code, description) values
  ('bad_encoding', 'the row holds NUL, bytes that are not UTF-8, or an unpaired UTF-16 surrogate escape: text PostgreSQL cannot store'),
  ('unreadable',   'valid JSON that PostgreSQL cannot hold: a number beyond its numeric range, or nesting deeper than it reads');
