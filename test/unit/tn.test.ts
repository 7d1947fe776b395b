/** Telephone-number canonicalisation (RFC 8225 §5.2.1 `tn`; RFC 8816 §9 dotted paths). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import { canonicalTn, isCanonicalTn, TN_MAX_DIGITS, TN_MIN_DIGITS } from "../../src/stir/tn.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CpsError ? err.code : `not a CpsError: ${String(err)}`;
  }
  return undefined;
}

describe("canonicalTn: accepted spellings", () => {
  it.each([
    ["22225552222", "22225552222"],
    ["+22225552222", "22225552222"],
    ["2.222.555.2222", "22225552222"], // RFC 8816 §9
    ["+2.222.555.2222", "22225552222"],
    ["2 222 555 2222", "22225552222"],
    ["+2 222 555 2222", "22225552222"],
    ["2-222-555-2222", "22225552222"],
    ["+1-202-555-0100", "12025550100"],
    ["+44 20 7946 0958", "442079460958"],
    ["1.2-3 4", "1234"], // mixed single separators between groups
    ["112", "112"], // 3 digits, the minimum
    ["+911", "911"],
    ["1.1.1", "111"],
    ["123456789012345", "123456789012345"], // 15 digits, the E.164 maximum
    ["+123 456 789 012 345", "123456789012345"],
    ["000", "000"],
  ])("%j -> %s", (input, expected) => {
    const tn = canonicalTn(input);
    expect(tn).toBe(expected);
    expect(isCanonicalTn(tn)).toBe(true);
  });
});

describe("canonicalTn: refused inputs give INVALID_TN", () => {
  it.each([
    ["empty", ""],
    ["only plus", "+"],
    ["only separators", ". -"],
    ["letters", "abc"],
    ["letter inside", "2225552a22"],
    ["vanity letters", "1-800-FLOWERS"],
    ["2 digits", "12"],
    ["2 digits with plus", "+12"],
    ["16 digits", "1234567890123456"],
    ["16 digits grouped", "+1 234 567 890 123 456"],
    ["double dot", "2..222.555.2222"],
    ["double space", "2  222 555 2222"],
    ["dash then dot", "2-.222"],
    ["leading dot", ".2222555222"],
    ["trailing dot", "2222555222."],
    ["leading dash", "-2222555222"],
    ["trailing dash", "2222555222-"],
    ["leading space", " 2222555222"],
    ["trailing space", "2222555222 "],
    ["separator after plus", "+.2222555222"],
    ["Arabic-Indic digits", "١٢٣"],
    ["fullwidth digits", "１２３４"],
    ["Devanagari digits", "१२३४"],
    ["plus not leading", "1+2345"],
    ["trailing plus", "12345+"],
    ["double plus", "++12345"],
    ["parentheses", "(202) 555-0100"],
    ["percent-encoded plus", "%2B12025550100"],
    ["percent", "1202%20555"],
    ["tab", "202\t5550100"],
    ["newline", "2025550100\n"],
    ["NUL", "2025550100\u0000"],
    ["slash", "202/555/0100"],
    ["underscore", "202_555_0100"],
    ["comma", "202,555,0100"],
    ["tel URI", "tel:+12025550100"],
    ["extension", "2025550100;ext=1"],
    ["very long digits", "1".repeat(10_000)],
    ["very long dotted", `${"1.".repeat(5_000)}1`],
    ["65 chars of valid shape", `1${" 1".repeat(32)}`],
  ])("%s", (_label, input) => {
    expect(codeOf(() => canonicalTn(input))).toBe("INVALID_TN");
  });

  it("refuses a non-string at runtime with INVALID_TN", () => {
    expect(codeOf(() => canonicalTn(12345 as unknown as string))).toBe("INVALID_TN");
    expect(codeOf(() => canonicalTn(undefined as unknown as string))).toBe("INVALID_TN");
  });

  it("INVALID_TN is a 400", () => {
    try {
      canonicalTn("x");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CpsError);
      expect((err as CpsError).status).toBe(400);
    }
  });
});

describe("canonicalTn: properties", () => {
  const digitGroups = fc
    .array(fc.stringMatching(/^[0-9]{1,5}$/), { minLength: 1, maxLength: 6 })
    .chain((groups) =>
      fc.tuple(
        fc.constant(groups),
        fc.array(fc.constantFrom(".", "-", " "), { minLength: groups.length, maxLength: groups.length }),
        fc.boolean(),
      ),
    );

  it("never throws anything but CpsError INVALID_TN, for any string", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.stringMatching(/^[+0-9. -]{0,20}$/)),
        (s) => {
          try {
            canonicalTn(s);
          } catch (err) {
            expect(err).toBeInstanceOf(CpsError);
            expect((err as CpsError).code).toBe("INVALID_TN");
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("output is 3 to 15 ASCII digits and canonicalising it again changes nothing", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^\+?[0-9]{1,6}([. -][0-9]{1,6}){0,3}$/)), (s) => {
        let tn: string;
        try {
          tn = canonicalTn(s);
        } catch {
          return;
        }
        expect(tn).toMatch(/^[0-9]{3,15}$/);
        expect(canonicalTn(tn)).toBe(tn);
      }),
      { numRuns: 2000 },
    );
  });

  it("any well-formed grouping of 3 to 15 digits canonicalises to those digits", () => {
    fc.assert(
      fc.property(digitGroups, ([groups, seps, plus]) => {
        const digits = groups.join("");
        const spelled = (plus ? "+" : "") + groups.map((g, i) => (i === 0 ? g : `${seps[i]}${g}`)).join("");
        const ok = digits.length >= TN_MIN_DIGITS && digits.length <= TN_MAX_DIGITS;
        if (ok) expect(canonicalTn(spelled)).toBe(digits);
        else expect(codeOf(() => canonicalTn(spelled))).toBe("INVALID_TN");
      }),
      { numRuns: 1000 },
    );
  });
});
