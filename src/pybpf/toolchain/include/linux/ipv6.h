/* pybpf's fallback <linux/ipv6.h>: the fixed IPv6 header. */
#ifndef _UAPI_IPV6_H
#define _UAPI_IPV6_H

#include <linux/types.h>
#include <linux/in6.h>
#include <asm/byteorder.h>

#define IPV6_MIN_MTU 1280

struct ipv6hdr {
#if defined(__LITTLE_ENDIAN_BITFIELD)
	__u8 priority:4,
	     version:4;
#else
	__u8 version:4,
	     priority:4;
#endif
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	union {
		struct {
			struct in6_addr saddr;
			struct in6_addr daddr;
		};
		struct {
			struct in6_addr saddr;
			struct in6_addr daddr;
		} addrs;
	};
};

#endif /* _UAPI_IPV6_H */
