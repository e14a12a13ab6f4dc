/*
 * JSONDocument — a small JSON reader that remembers where every value starts, and a writer that
 * keeps key order.
 *
 * Foundation's decoders say *what* is wrong with a configuration but not *where*; an operator
 * editing a 200-line file wants "swale.json:42". This reader follows RFC 8259 strictly (no comments,
 * no trailing commas, no duplicate keys, nesting bounded so hostile input cannot exhaust the stack)
 * and records the line of each value and key. The writer prints objects in the order they were
 * built, so `swalectl config dump` reads like the file an operator would write.
 */
import Foundation

public struct JSONValue: Equatable, Sendable {
    public indirect enum Kind: Equatable, Sendable {
        case object([Member])
        case array([JSONValue])
        case string(String)
        /// The number's text as written (so integers stay exact).
        case number(String)
        case bool(Bool)
        case null
    }
    public struct Member: Equatable, Sendable {
        public var key: String
        public var value: JSONValue
        public init(_ key: String, _ value: JSONValue) { self.key = key; self.value = value }
    }

    public var kind: Kind
    /// 1-based line where the value starts (0 for values built in code).
    public var line: Int

    public init(_ kind: Kind, line: Int = 0) { self.kind = kind; self.line = line }

    public static func string(_ s: String) -> JSONValue { JSONValue(.string(s)) }
    public static func int(_ i: Int) -> JSONValue { JSONValue(.number(String(i))) }
    public static func object(_ members: [(String, JSONValue?)]) -> JSONValue {
        JSONValue(.object(members.compactMap { k, v in v.map { Member(k, $0) } }))
    }
    public static func array(_ items: [JSONValue]) -> JSONValue { JSONValue(.array(items)) }

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.kind == b.kind }  // positions do not matter

    var typeName: String {
        switch kind {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "true/false"
        case .null: return "null"
        }
    }
}

public struct JSONSyntaxError: Error, CustomStringConvertible, Equatable {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

// MARK: reading

extension JSONValue {
    /// Nesting deeper than this is refused (a configuration needs four levels).
    public static let maxDepth = 64

    public static func parse(_ text: String) throws -> JSONValue {
        var r = JSONReader(Array(text.utf8))
        r.skipSpace()
        let v = try r.value(depth: 0)
        r.skipSpace()
        guard r.atEnd else { throw r.error("unexpected text after the end of the document") }
        return v
    }
}

private struct JSONReader {
    let b: [UInt8]
    var i = 0
    var line = 1
    var lineStart = 0

    init(_ bytes: [UInt8]) { b = bytes }

    var atEnd: Bool { i >= b.count }

    func error(_ m: String) -> JSONSyntaxError { JSONSyntaxError(line: line, column: i - lineStart + 1, message: m) }

    mutating func skipSpace() {
        while i < b.count {
            switch b[i] {
            case 0x0A: line += 1; i += 1; lineStart = i
            case 0x20, 0x09, 0x0D: i += 1
            default: return
            }
        }
    }

    mutating func expect(_ c: UInt8, _ what: String) throws {
        guard i < b.count, b[i] == c else {
            throw error(
                i < b.count
                    ? "expected \(what), found '\(Character(Unicode.Scalar(b[i])))'"
                    : "expected \(what), found the end of the file")
        }
        i += 1
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth < JSONValue.maxDepth else { throw error("nesting deeper than \(JSONValue.maxDepth) levels") }
        guard i < b.count else { throw error("expected a value, found the end of the file") }
        let at = line
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [JSONValue.Member] = []
            var seen = Set<String>()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return JSONValue(.object([]), line: at) }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw error("expected a key in double quotes") }
                let keyLine = line
                let key = try string()
                guard seen.insert(key).inserted else {
                    throw JSONSyntaxError(
                        line: keyLine, column: i - lineStart, message: "key '\(key)' appears twice in the same object")
                }
                skipSpace()
                try expect(UInt8(ascii: ":"), "':' after key '\(key)'")
                skipSpace()
                var v = try value(depth: depth + 1)
                if v.line == 0 { v.line = keyLine }
                members.append(JSONValue.Member(key, v))
                skipSpace()
                guard i < b.count else { throw error("unterminated object (missing '}')") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return JSONValue(.object(members), line: at)
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return JSONValue(.array([]), line: at) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < b.count else { throw error("unterminated array (missing ']')") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return JSONValue(.array(items), line: at)
            }
        case UInt8(ascii: "\""):
            return JSONValue(.string(try string()), line: at)
        case UInt8(ascii: "t"): try literal("true"); return JSONValue(.bool(true), line: at)
        case UInt8(ascii: "f"): try literal("false"); return JSONValue(.bool(false), line: at)
        case UInt8(ascii: "n"): try literal("null"); return JSONValue(.null, line: at)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return JSONValue(.number(try number()), line: at)
        default:
            throw error("unexpected character '\(Character(Unicode.Scalar(b[i])))' where a value should start")
        }
    }

    mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= b.count, Array(b[i..<i + w.count]) == w else { throw error("unknown word (expected \(word))") }
        i += w.count
    }

    mutating func number() throws -> String {
        let start = i
        func digits() -> Int { let s = i; while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }; return i - s }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, (0x30...0x39).contains(b[i]) else { throw error("a number needs digits") }
        if b[i] == 0x30 { i += 1 } else { _ = digits() }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw error("a number needs digits after '.'") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw error("a number needs digits in its exponent") }
        }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw error("\\u needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw error("\\u needs four hex digits")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    mutating func string() throws -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw error("unterminated string (missing '\"')") }
            let c = b[i]
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                i += 1
                guard i < b.count else { throw error("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw error("lone surrogate in \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("invalid surrogate pair in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("unknown escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            case 0x00..<0x20:
                throw error("control character in a string (write it as an escape)")
            default:
                out.append(c)
                i += 1
            }
        }
    }
}

// MARK: writing

extension JSONValue {
    /// Pretty-printed with two-space indentation; short arrays of scalars stay on one line.
    public func rendered(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1)
        let end = String(repeating: "  ", count: indent)
        switch kind {
        case .object(let ms):
            if ms.isEmpty { return "{}" }
            return "{\n"
                + ms.map { pad + JSONValue.quote($0.key) + ": " + $0.value.rendered(indent: indent + 1) }.joined(separator: ",\n")
                + "\n" + end + "}"
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { pad + $0.rendered(indent: indent + 1) }.joined(separator: ",\n") + "\n" + end + "]"
        case .string(let s): return JSONValue.quote(s)
        case .number(let n): return n
        case .bool(let v): return v ? "true" : "false"
        case .null: return "null"
        }
    }

    static func quote(_ s: String) -> String {
        var o = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\r": o += "\\r"
            case "\t": o += "\\t"
            case _ where u.value < 0x20: o += String(format: "\\u%04x", u.value)
            default: o.unicodeScalars.append(u)
            }
        }
        return o + "\""
    }
}
