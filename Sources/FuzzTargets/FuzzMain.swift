import Glibc

// One executable for every fuzz target: `glusterfs-csi-fuzz TARGET [libFuzzer options] [CORPUS...]`.
//
// Built with -DGLUSTERFS_CSI_FUZZ and -sanitize=fuzzer,address (bench/fuzz, scripts/test), main
// hands the remaining arguments to libFuzzer's driver with the chosen target as the input callback.
// Built without them, it replays the files (or directories of files) it is given through the same
// checks, which needs no libFuzzer: a crash found elsewhere can be replayed under a debugger.
//
// SwiftPM links an executable's `main` as `<module>_main` and points the `main` symbol at it, so
// libFuzzer's own `main` cannot be used; LLVMFuzzerRunDriver is libFuzzer's entry point for
// programs that have a main of their own.

#if GLUSTERFS_CSI_FUZZ
@_extern(c, "LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The target libFuzzer's callback runs; set once, before the driver starts.
nonisolated(unsafe) private var selectedTarget: FuzzTarget?

/// libFuzzer's input callback. The libFuzzer archive the toolchain links references this symbol
/// (from its unused `main`), so it must exist under this name.
@_cdecl("LLVMFuzzerTestOneInput")
func llvmFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selectedTarget?.run(bytes)
    return 0
}
#endif

@main
enum FuzzMain {
    /// Set for the process and its children: libFuzzer's -fork, -jobs and -merge modes run this
    /// binary again with libFuzzer's arguments only, so the target name travels in the environment.
    static let targetVariable = "GLUSTERFS_CSI_FUZZ_TARGET"

    static func main() {
        var arguments = CommandLine.arguments
        if arguments.count >= 2, arguments[1] == "--list" {
            for target in FuzzTargets.all { print("\(target.name)\t\(target.summary)") }
            return
        }
        if arguments.count == 3, arguments[1] == "--write-seeds" {
            Seeds.write(to: arguments[2])
            return
        }
        let named = arguments.count >= 2 ? FuzzTargets.named(arguments[1]) : nil
        let inherited = getenv(targetVariable).flatMap { FuzzTargets.named(String(cString: $0)) }
        guard let target = named ?? inherited else {
            usage()
            exit(2)
        }
        if named != nil {
            arguments.remove(at: 1)
            setenv(targetVariable, target.name, 1)
        }
        FuzzFixture.prepare()

        #if GLUSTERFS_CSI_FUZZ
        selectedTarget = target
        // libFuzzer keeps pointers into argv for the whole run: the C strings are never freed.
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = .allocate(capacity: arguments.count + 1)
        for (index, argument) in arguments.enumerated() { argv![index] = strdup(argument) }
        argv![arguments.count] = nil
        var argc = CInt(arguments.count)
        exit(llvmFuzzerRunDriver(&argc, &argv, llvmFuzzerTestOneInput))
        #else
        exit(Replay.run(target, paths: Array(arguments.dropFirst())))
        #endif
    }

    static func usage() {
        let text = """
            usage: glusterfs-csi-fuzz TARGET [libFuzzer options] [CORPUS_DIR | FILE ...]
                   glusterfs-csi-fuzz --list
                   glusterfs-csi-fuzz --write-seeds DIR

            Targets (bench/fuzz runs them; see bench/README.md):

            """
        printError(text + FuzzTargets.all.map { "  \($0.name): \($0.summary)\n" }.joined())
    }
}

/// Runs files through a target without libFuzzer (a build without -DGLUSTERFS_CSI_FUZZ).
enum Replay {
    /// Feeds every file named in `paths` (directories: every file in them) to `target`. A broken
    /// property stops the process; returns 0 when all inputs pass, 1 when a path cannot be read.
    static func run(_ target: FuzzTarget, paths: [String]) -> CInt {
        var count = 0
        for path in paths {
            for file in files(at: path) {
                guard let bytes = read(file) else {
                    printError("cannot read \(file)\n")
                    return 1
                }
                target.run(bytes)
                count += 1
            }
        }
        print("\(target.name): \(count) inputs replayed, every property held")
        return 0
    }

    /// `path` itself, or the regular files directly in it when it is a directory, sorted.
    static func files(at path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        return ferror(file) == 0 ? bytes : nil
    }
}

/// Writes `text` to standard error.
func printError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}
