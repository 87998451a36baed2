// Generates ../js-dates.json: what V8's `new Date(string).getTime()` returns for a list of
// date strings, the truth for the evaluator's JavaScript date parser (evaluator/src/dates.rs).
//
// Usage (from the repository root): TZ=UTC node tests/vectors/generators/js_dates.mjs > tests/vectors/js-dates.json
//
// Strings without a time zone are local time in JavaScript; the edge and the SDKs it is compared
// with run on UTC, so the generator refuses to run in any other zone. The output is one case
// per line, `{"input": string, "expected": epoch ms or null for NaN}`, and is deterministic: the
// random part uses a fixed-seed PRNG, and no case reads the clock.

if (new Date(2024, 0, 1).getTimezoneOffset() !== 0 || new Date(2024, 6, 1).getTimezoneOffset() !== 0) {
  console.error("run with TZ=UTC: strings without a zone are local time");
  process.exit(1);
}

const cases = [];
const add = (...inputs) => cases.push(...inputs);

// ISO 8601 / ECMAScript date-time string format, valid and almost valid.
add(
  "2024", "0000", "9999", "+002024", "-002024", "+000000", "-000000", "+275760", "-271821", "+275761",
  "2024-05", "2024-13", "2024-00", "2024-05-01", "2024-05-31", "2024-05-32", "2024-05-00",
  "2024-02-29", "2023-02-29", "2024-02-30", "2024-02-31", "2023-02-30", "2024-04-31", "2024-06-31",
  "2024-05-01T10:00", "2024-05-01T10:00Z", "2024-05-01T10:00:00", "2024-05-01T10:00:00Z",
  "2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.12Z", "2024-05-01T10:00:00.123Z",
  "2024-05-01T10:00:00.1234Z", "2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.0001234567891Z",
  "2024-05-01T10:00:00.Z", "2024-05-01T10:00:00.000+02:00", "2024-05-01T10:00:00-05:30",
  "2024-05-01T10:00:00+0200", "2024-05-01T10:00:00+02", "2024-05-01T10:00:00+24:00",
  "2024-05-01T10:00:00+23:59", "2024-05-01T10:00:00+02:60", "2024-05-01T10:00:00 Z",
  "2024-05-01T10:00:00z", "2024-05-01t10:00:00Z", "2024-05-01T10:00:00UT", "2024-05-01T10:00:00GMT",
  "2024-05-01T10:00:00 GMT", "2024-05-01T10:00:00 +02:00", "2024-05-01T24:00", "2024-05-01T24:00:00.000Z",
  "2024-05-01T24:00:01", "2024-05-01T24:01", "2024-05-01T25:00", "2024-05-01T10:60", "2024-05-01T10:00:60",
  "2024-05-01T1:00", "2024-05-01T10", "2024-05-01T", "2024-05-01Tx", "2024-05-01T10:00:00ZZ",
  "2024-05-01 10:00", "2024-05-01 10:00:00", "2024-05-01 10:00:00Z", "2024-05-01 10:00:00.123",
  "2024-05-01 10:00:00 +0200", "2024-05-01 10:00:00 GMT+0200", "2024-05-01 10:00 PM", "2024-05-01 24:00",
  "2024-05-01  10:00", "2024-05-01\t10:00", "2024-5-1", "2024-05-1", "2024-5-01", "24-05-01",
  "02024-05-01", "2024-005-01", "+2024-05-01", "+02024-05-01", "+0020240-05-01", "-000001-01-01",
  "+010000-01-01", "-010000-01-01T00:00:00Z", "+275760-09-13T00:00:00.000Z", "+275760-09-13T00:00:00.001Z",
  "-271821-04-20T00:00:00.000Z", "-271821-04-19T23:59:59.999Z", "-271821-04-20", "1970-01-01",
  "1969-12-31T23:59:59.999Z", "1900-02-29", "2000-02-29", "2100-02-29", "1600-02-29",
  " 2024-05-01", "2024-05-01 ", "2024-05-01\n", "\t2024-05-01", "2024-05-01Z", "2024-05-01+02:00",
  "2024-05-01T10:00:00.000000000000000000001Z", "2024-05-01T10:00:00,5Z", "2024-W18", "2024-122",
);

// Output of Date's own formatters (what `String(date)` puts into a context).
const instants = [
  0, -1, 1, 86_399_999, 1_714_521_600_000, 1_714_557_845_123, 951_782_400_000, -62_198_755_200_000,
  -62_135_596_800_000, 253_402_300_799_999, 8.64e15, -8.64e15, 1e12, -2_208_988_800_000, 4_102_444_800_000,
];
for (const t of instants) {
  const d = new Date(t);
  add(d.toString(), d.toUTCString(), d.toISOString(), d.toDateString(), d.toJSON(), d.toLocaleString("en-US"));
  add(d.toLocaleDateString("en-US"), d.toLocaleString("en-GB"), d.toString().replace(/ \(.*\)$/, ""));
}

// The legacy ("Safari-compatible") forms: month names, slashes, AM/PM, zone names, comments.
add(
  "May 1, 2024", "May 1 2024", "1 May 2024", "1 may 2024", "MAY 1 2024", "2024 May 1", "May 2024", "May",
  "May 1", "Jan 1", "Dec 31", "Sept 1 2024", "September 1, 2024", "Septiembre 1 2024", "Mayday 1 2024",
  "Ma 1 2024", "Mai 1 2024", "January 32 2024", "February 30, 2024", "Feb 29 2023", "Feb 29 2024",
  "May 1, 24", "May 1, 49", "May 1, 50", "May 1, 99", "May 1, 100", "May 1, 0", "May 1, 999999999",
  "May 1, 1000000", "May 1, 275760", "May 1, 275761", "May 1 -2024", "May-1-2024", "1-May-2024",
  "01-May-24", "May 1, 2024 10:00", "May 1, 2024 10:00:30", "May 1, 2024 10:00:30.25", "May 1, 2024 10:00 PM",
  "May 1, 2024 10:00 pm", "May 1, 2024 12:00 AM", "May 1, 2024 12:00 PM", "May 1, 2024 13:00 PM",
  "May 1, 2024 0:00 AM", "May 1, 2024 10 PM", "May 1, 2024 PM 10:00", "May 1, 2024 10:00PM", "May 1, 2024 10:00 P.M.",
  "May 1, 2024 10:00 UTC", "May 1, 2024 10:00 GMT", "May 1, 2024 10:00 UT", "May 1, 2024 10:00 Z",
  "May 1, 2024 10:00 EST", "May 1, 2024 10:00 EDT", "May 1, 2024 10:00 CST", "May 1, 2024 10:00 CDT",
  "May 1, 2024 10:00 MST", "May 1, 2024 10:00 MDT", "May 1, 2024 10:00 PST", "May 1, 2024 10:00 PDT",
  "May 1, 2024 10:00 CET", "May 1, 2024 10:00 GMT+2", "May 1, 2024 10:00 GMT-8", "May 1, 2024 10:00 GMT+0530",
  "May 1, 2024 10:00 GMT+05:30", "May 1, 2024 10:00 GMT+5:30", "May 1, 2024 10:00 GMT+123", "May 1, 2024 10:00 GMT+12345",
  "May 1, 2024 10:00 GMT+", "May 1, 2024 10:00 GMT+2:", "May 1, 2024 10:00 GMT+298262:",
  "May 1, 2024 10:00 GMT+596524:", "May 1, 2024 10:00 GMT+1193047:", "May 1, 2024 10:00 GMT+1234567890:",
  "May 1, 2024 10:00:00.0001234567891", "May 1, 2024 10:00 +0200", "May 1, 2024 10:00 -02:00", "May 1, 2024 10:00 UTC+2",
  "May 1, 2024 10:00 GMT+2 (Central European Summer Time)", "May 1, 2024 (note) 10:00", "(note) May 1 2024",
  "May 1 (a(b)c) 2024", "May 1 2024 (unclosed", "May 1 2024)", "May 1 2024 +", "May 1 2024 -", "May 1, 2024, 10:00",
  "Wed May 01 2024", "Wednesday, May 1, 2024", "Wed, 01 May 2024 10:00:00 GMT", "Wed, 01 May 2024 10:00:00 +0000",
  "Thu, 01 Jan 1970 00:00:00 GMT", "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)",
  "Tue May 01 2024 10:00:00 GMT+0200 (CEST)", "Wed May 01 2024 10:00:00 GMT-0700 (Pacific Daylight Time)",
  "2024/05/01", "2024/5/1", "2024/05/01 10:00", "2024/05/01 10:00:00 UTC", "2024/13/01", "2024/02/30",
  "05/01/2024", "5/1/2024", "5/1/24", "5/1/49", "5/1/50", "5/1/99", "5/1", "13/01/2024", "01/13/2024",
  "32/01/2024", "0/1/2024", "1/0/2024", "12/31/1999 23:59:59", "12/31/1999 24:00", "12/31/1999 24:00:01",
  "1.5.2024", "2024.05.01", "01.05.2024", "01-05-2024", "05-01-2024", "2024-05-01-", "20240501",
  "2024 05 01", "2024, May 1", "1 2 3", "1 2 3 4", "1/2/3/4", "10:00", "10:00:00", "10:00 May 1 2024",
  "10:00:00 1/2/2024", "10::", "10:: May 1 2024", "10:.5 May 1 2024", "May 1 2024 10:00:00:00",
  "May 1 2024 10:00.5", "May 1 2024 10.5", "May 1 2024 10:00:00.5.6", "May 1 2024 10:00 10:00",
  "T10:00", "2024T10:00", "May 1 2024 T 10:00", "am 5/1/2024", "5/1/2024 am", "pm", "utc", "gmt 5/1/2024",
  "5/1/2024 GMT 10:00", "5/1/2024 10:00 GMT GMT", "5/1/2024 10:00 +02 +03", "5/1/2024 +0200",
  "GMT+0200 5/1/2024 10:00", "5/1/2024 10:00 Z+0200", "5/1/2024 10:00Z", "5/1/2024 10:00 Zulu",
);

// Numbers and things that are not dates (Reflag context values such as ids, plans, booleans).
add(
  "0", "1", "12", "13", "31", "32", "49", "50", "99", "100", "2024", "20240", "202405", "1714521600",
  "1714521600000", "999999999", "1000000000", "0000000001", "-1", "+1", "-2024", "1.5", "1e3", "0x1A",
  "Infinity", "NaN", "true", "false", "null", "undefined", "", " ", "  \t ", "c-1", "c-12", "u-3", "u-1234",
  "pro", "free", "enterprise", "user@example.com", "acme-2024", "v1.2.3", "1.2.3", "order #5",
  "x 5", "x5", "5x", "5 x", "5-x", "(5)", "5)", ")5", "-", "+", ":", ".", "/", ",", "()", "(", ")",
);

// Unicode: whitespace and line terminators V8 knows, digits and letters it does not.
add(
  "May\u00a01,\u00a02024", "May\u20281 2024", "May\u20291 2024", "May\u30001 2024", "May\ufeff1 2024",
  "\u00a02024-05-01", "May\u000b1\u000c2024", "May\r\n1 2024", "May 1 2024\u0000garbage", "2024\u0000",
  "２０２４-05-01", "May ١ 2024", "2024年5月1日", "Май 1 2024", "May 1 2024 🙂", "🙂 May 1 2024",
  "Ｍay 1 2024", "May 1 2024 ẞ", "mAY 1 2024", "ÿ May 1 2024",
);

// Random token soups over the tokens the legacy parser distinguishes (fixed seed: deterministic).
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20240501);
const tokens = [
  "2024", "1999", "05", "5", "1", "12", "13", "24", "29", "30", "31", "32", "0", "00", "49", "50", "99", "123",
  "0000", "999999", "+002024", "1234567890", "-", "/", ":", "::", " ", "  ", ".", ",", "+", "T", "t", "Z", "z",
  "GMT", "UTC", "UT", "EST", "pdt", "May", "jan", "Sept", "December", "AM", "pm", "(x)", "(", ")", "Wed",
  "foo", "\t", "\u00a0", "#",
];
const soups = new Set();
while (soups.size < 1200) {
  const n = 1 + Math.floor(rand() * 9);
  let s = "";
  for (let i = 0; i < n; i++) s += tokens[Math.floor(rand() * tokens.length)];
  soups.add(s);
}
add(...soups);

// Near-ISO strings built from valid and invalid fields (also fixed seed).
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
for (let i = 0; i < 400; i++) {
  const y = pick(["2024", "1970", "0000", "+012345", "-000100", "99", "20245"]);
  const mo = pick(["", "-01", "-02", "-12", "-13", "-00", "-1"]);
  const d = mo ? pick(["", "-01", "-28", "-29", "-30", "-31", "-32", "-1"]) : "";
  const sep = pick(["T", "t", " ", ""]);
  const time = sep
    ? pick(["10:00", "23:59:59", "24:00", "24:00:00.000", "10:00:00.1", "10:00:00.123456", "9:00", "10:0", "10:00:00."])
    : "";
  const zone = time ? pick(["", "Z", "z", "+01:00", "-0130", "+1", "+25:00", " GMT", " PM"]) : "";
  add(y + mo + d + sep + time + zone);
}

const seen = new Set();
const lines = [];
for (const input of cases) {
  if (seen.has(input)) continue;
  seen.add(input);
  const t = new Date(input).getTime();
  lines.push(JSON.stringify({ input, expected: Number.isNaN(t) ? null : t }));
}
process.stdout.write(`[\n${lines.join(",\n")}\n]\n`);
