/// What the Ethernet bridge counts; the raw value is the name in `EthernetBridge.counters`. Its drops are
/// `PacketDropReason`s, counted as `drop_` + their raw value.
public enum BridgeCounter: String, Sendable, CaseIterable {
    case arpAnswerToProxy = "arp_answer_to_proxy"
    case arpAnsweredForKeyDeliveryAddress = "arp_answered_for_key_delivery_address"
    case forwardedOtherEthertype = "forwarded_other_ethertype"
    case linkAddressSolicited = "link_address_solicited"
    case ndAnsweredForKeyDeliveryAddress = "nd_answered_for_key_delivery_address"
}
