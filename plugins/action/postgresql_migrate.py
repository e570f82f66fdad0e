# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of postgresql_migrate: a long step, run in the background and polled soon (plugin_utils.background)."""

from __future__ import annotations

from ansible_collections.dualboot.db.plugins.plugin_utils.background import BackgroundModuleAction


class ActionModule(BackgroundModuleAction):
    """postgresql_migrate as a background job, looked at after 0.25, 0.5, 1 ... s (see plugin_utils/background.py)."""
