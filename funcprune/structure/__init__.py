"""Structure: channel groups from a captured graph, group pruning, and a physical shrink.

* :func:`channel_groups` finds which parameter slices must be removed together;
* :func:`group_structured` prunes whole groups (a pruning method like the others);
* :func:`shrink` builds the physically smaller module that computes what the masked one does.
"""

from funcprune.structure.groups import ChannelGroup, ChannelGroups, Exclusion, Slice, channel_groups
from funcprune.structure.method import GroupStructured, group_structured
from funcprune.structure.shrink import shrink

__all__ = [
    "ChannelGroup",
    "ChannelGroups",
    "Exclusion",
    "GroupStructured",
    "Slice",
    "channel_groups",
    "group_structured",
    "shrink",
]
