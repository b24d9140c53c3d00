import Heketi
import Migration
import Testing

/// The same objects give the same output, byte for byte, whatever order kubectl lists them in and
/// however many files they come in.
@Suite struct DeterminismTests {
    /// The fixture's items in another order, written back as JSON.
    static func reordered(_ name: String, _ permute: ([JSONValue]) -> [JSONValue]) throws -> MigrationInput {
        guard case .object(var list) = try JSONValue(parsing: Fixture.bytes(name)),
            case .array(let items) = list["items"]
        else { throw MigrationInputError("\(name) is not a List") }
        list["items"] = .array(permute(items))
        return MigrationInput(name: name, bytes: JSONValue.object(list).text)
    }

    /// A fixed pseudo-random shuffle (a linear congruential generator), so failures reproduce.
    static func shuffled(_ items: [JSONValue], seed: UInt64) -> [JSONValue] {
        var items = items
        var state = seed
        for index in stride(from: items.count - 1, to: 0, by: -1) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            items.swapAt(index, Int((state >> 33) % UInt64(index + 1)))
        }
        return items
    }

    static let orders: [(String, @Sendable ([JSONValue]) -> [JSONValue])] = [
        ("reversed", { Array($0.reversed()) }),
        ("rotated", { Array($0.dropFirst(5) + $0.prefix(5)) }),
        ("shuffled 1", { shuffled($0, seed: 1) }),
        ("shuffled 2", { shuffled($0, seed: 0x5eed) }),
        ("shuffled 3", { shuffled($0, seed: 0xdead_beef) }),
    ]

    @Test(arguments: ["in-tree.json", "refusals.json"])
    func twoRunsAreIdentical(fixture: String) {
        let first = migrate([fixture])
        let second = migrate([fixture])
        #expect(first == second)
    }

    @Test(arguments: ["in-tree.json", "refusals.json"], [0, 1, 2, 3, 4])
    func inputOrderDoesNotMatter(fixture: String, order: Int) throws {
        let (label, permute) = Self.orders[order]
        let input = try Self.reordered(fixture, permute)
        let reordered = MigrateOutcome(inputs: [input], inputNames: [fixture], options: MigrationOptions())
        let original = migrate([fixture])
        #expect(reordered.standardOutput == original.standardOutput, "\(label)")
        #expect(reordered.standardError == original.standardError, "\(label)")
        #expect(reordered.status == original.status, "\(label)")
    }

    /// Objects split over several files (kubectl get pv -o json > pv.json; ... pvc ...) read as one.
    @Test func objectsSplitOverFiles() throws {
        guard case .object(let list) = try JSONValue(parsing: Fixture.bytes("in-tree.json")),
            case .array(let items) = list["items"]
        else { throw MigrationInputError("not a List") }
        var byKind: [String: [JSONValue]] = [:]
        for item in items {
            guard case .object(let fields) = item, case .string(let kind) = fields["kind"] else { continue }
            byKind[kind, default: []].append(item)
        }
        let inputs = byKind.keys.sorted().map { kind in
            var part = list
            part["items"] = .array(byKind[kind]!)
            return MigrationInput(name: kind, bytes: JSONValue.object(part).text)
        }
        let split = MigrateOutcome(inputs: inputs, inputNames: ["in-tree.json"], options: MigrationOptions())
        #expect(split == migrate(["in-tree.json"]))
        // A single object (kubectl get pv NAME -o json) is an input too.
        let single = inputs.flatMap { input -> [MigrationInput] in
            guard case .object(let part) = try! JSONValue(parsing: input.bytes),
                case .array(let objects) = part["items"]
            else { return [] }
            return objects.map { MigrationInput(name: input.name, bytes: $0.text) }
        }
        let one = MigrateOutcome(inputs: single, inputNames: ["in-tree.json"], options: MigrationOptions())
        #expect(one == migrate(["in-tree.json"]))
    }
}
