import CSICore
import Glibc
import Testing

@testable import GRPCServer

private func temporaryDirectory() -> String {
    var template = Array("/tmp/gcsi-guard-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: path!)
}

@Suite struct SocketGuardTests {
    @Test func createsMissingParentDirectories() throws {
        let socket = temporaryDirectory() + "/a/b/csi.sock"
        let guardian = try SocketGuard(socketPath: socket)
        var info = stat()
        #expect(stat(socket.replacingLastComponent(), &info) == 0)
        _ = guardian
    }

    @Test func aSecondGuardOnTheSamePathIsRefusedWhileTheFirstLives() throws {
        let socket = temporaryDirectory() + "/csi.sock"
        let first = try SocketGuard(socketPath: socket)
        #expect {
            _ = try SocketGuard(socketPath: socket)
        } throws: { error in
            let error = error as! CSIError
            return error.code == .failedPrecondition && error.message.contains("pid \(getpid())")
        }
        _ = first
    }

    @Test func theLockIsReleasedWhenTheGuardGoesAway() throws {
        let socket = temporaryDirectory() + "/csi.sock"
        do { _ = try SocketGuard(socketPath: socket) }
        _ = try SocketGuard(socketPath: socket)
    }

    @Test func aRegularFileAtTheSocketPathIsRefusedAndKept() throws {
        let socket = temporaryDirectory() + "/csi.sock"
        let descriptor = open(socket, O_CREAT | O_WRONLY, 0o600)
        close(descriptor)
        #expect {
            _ = try SocketGuard(socketPath: socket)
        } throws: { error in
            (error as! CSIError).message.contains("is not a socket")
        }
        var info = stat()
        #expect(stat(socket, &info) == 0)
    }
}

extension String {
    fileprivate func replacingLastComponent() -> String {
        String(self[..<lastIndex(of: "/")!])
    }
}
