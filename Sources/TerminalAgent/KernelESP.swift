import ESP
import IKEv2
import KeyDelivery

/// A terminal's kernel that does ESP itself (Linux XFRM): the agent hands it the SAs the proxy sets and
/// takes them out again; the kernel encrypts, decrypts, counts and enforces lifetimes, and reports
/// packets with no SA and expiries, which the runner passes to the agent. A protocol so that the agent's
/// bookkeeping is tested without a kernel; `XFRMKernel` is the real one.
public protocol KernelESP: AnyObject {
    /// Installs one direction of an SA with the policies that steer its traffic; throws why not.
    func install(_ sa: SecurityAssociationParameters) throws
    /// Removes an SA; whether it was held.
    @discardableResult func remove(spi: ChildSPI, direction: ESPDirection) -> Bool
    /// The SAs held, each with its direction.
    var held: [(spi: ChildSPI, direction: ESPDirection)] { get }
    /// Each held SA's traffic as the kernel counts it.
    func counters() -> [SAStatus]
}
