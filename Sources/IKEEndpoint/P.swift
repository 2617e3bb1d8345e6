import IKEv2
