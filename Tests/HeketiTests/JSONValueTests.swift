import Testing

@testable import Heketi

@Suite struct JSONValueTests {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONValue(parsing: Array(text.utf8))
    }

    @Test func readsEveryKindOfValue() throws {
        let value = try parse(
            #" { "a" : [1, -2.5, 3e2, 0, true, false, null], "s": "x\"\\\/\b\f\n\r\tü\u00e9\ud83d\ude00", "o": {} , "e": [] } "#
        )
        #expect(
            value
                == .object([
                    "a": .array([.number(1), .number(-2.5), .number(300), .number(0), .bool(true), .bool(false), .null]
                    ),
                    "s": .string("x\"\\/\u{8}\u{C}\n\r\tüé😀"), "o": .object([:]), "e": .array([]),
                ]))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "[1 2]", "01", "-", "1.", "1e", "+1", ".5", "tru", "nul",
        "\"abc", "\"a\u{1}b\"", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "{1:2}", "[1] x", "Id not found", "1e999",
    ])
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(throws: HeketiWireError.self) { try parse(text) }
    }

    @Test func loneSurrogateHalvesBecomeReplacementCharactersAsInGo() throws {
        #expect(try parse(#""\uD800\uD800\uDC00""#) == .string("\u{FFFD}\u{10000}"))
        #expect(try parse(#""\uDC00x\uD800""#) == .string("\u{FFFD}x\u{FFFD}"))
        #expect(try parse(#""\uD800\n""#) == .string("\u{FFFD}\n"))
    }

    @Test func largeIntegersAreWrittenAsIntegers() {
        #expect(String(decoding: JSONValue.number(1e15).text, as: UTF8.self) == "1000000000000000")
        #expect(String(decoding: JSONValue.number(-2).text, as: UTF8.self) == "-2")
    }

    @Test func saysWhereTheProblemIs() {
        #expect(throws: HeketiWireError("not JSON: expected ',' or ']' at byte 3")) { try parse("[1 2]") }
    }

    @Test func deepNestingIsRefusedNotACrash() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: HeketiWireError.self) { try parse(deep) }
        let fine = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try parse(fine)
    }

    @Test func writesSortedCompactAndEscaped() throws {
        let value = JSONValue.object([
            "z": .number(2001), "a": .string("q\"\\\n\u{1}é"), "m": .array([.bool(true), .null, .number(1.5)]),
            "big": .number(104_857_600_000),
        ])
        let text = String(decoding: value.text, as: UTF8.self)
        #expect(text == #"{"a":"q\"\\\n\u0001é","big":104857600000,"m":[true,null,1.5],"z":2001}"#)
        #expect(try JSONValue(parsing: value.text) == value)
    }

    @Test func fieldsFollowGosRules() throws {
        let fields = try JSONFields(
            parse(#"{"n":null,"i":5,"f":5.5,"s":"x","l":["a",1],"o":{"p":{"q":"r"}},"big":1e300}"#))
        #expect(try fields.string("n") == nil)
        #expect(try fields.string("missing") == nil)
        #expect(try fields.int("i") == 5)
        #expect(throws: HeketiWireError("unexpected type at f")) { try fields.int("f") }
        #expect(throws: HeketiWireError("unexpected type at big")) { try fields.int("big") }
        #expect(throws: HeketiWireError("unexpected type at s")) { try fields.int("s") }
        #expect(throws: HeketiWireError("unexpected type at l[1]")) { try fields.strings("l") }
        #expect(throws: HeketiWireError("unexpected type at o.p.q")) { try fields.object("o")?.object("p")?.int("q") }
        #expect(throws: HeketiWireError("null at n")) { try fields.requiredString("n") }
        #expect(throws: HeketiWireError("missing field 'x' in o")) { try fields.object("o")?.requiredString("x") }
        #expect(throws: HeketiWireError("unexpected type at the body")) { try JSONFields(parse("[]")) }
    }
}
