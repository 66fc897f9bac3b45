# Patch: install pending Critical and Security updates through the Windows Update Agent, never
# restart; whether a restart is needed goes into the marker detail.
Read-PpParametersFromEnv

Invoke-PpDocument -Work {
    # Update classifications by id, so a localized Windows gives the same answer.
    $classifications = @(
        'e6cf1350-c01b-414d-a61f-263d14d133b4', # Critical Updates
        '0fa1201d-4330-4fa8-8ae9-b877473b6441'  # Security Updates
    )
    $session = New-Object -ComObject Microsoft.Update.Session
    $session.ClientApplicationID = 'patch-pipeline'
    $searcher = $session.CreateUpdateSearcher()
    $found = $searcher.Search("IsInstalled=0 and IsHidden=0 and Type='Software'")
    $selected = New-Object -ComObject Microsoft.Update.UpdateColl
    foreach ($update in $found.Updates) {
        $ids = @($update.Categories | ForEach-Object { ([string]$_.CategoryID).ToLowerInvariant() })
        if (@($ids | Where-Object { $classifications -contains $_ }).Count -eq 0) {
            continue
        }
        if (-not $update.EulaAccepted) {
            $update.AcceptEula()
        }
        [void]$selected.Add($update)
    }
    if ($selected.Count -eq 0) {
        $script:PpDetail = 'installed=0 failed=0 rebootRequired=false manager=wua'
        return
    }
    Write-PpLog "$($selected.Count) critical or security updates to install"

    $downloader = $session.CreateUpdateDownloader()
    $downloader.Updates = $selected
    [void]$downloader.Download()

    $downloaded = New-Object -ComObject Microsoft.Update.UpdateColl
    foreach ($update in $selected) {
        if ($update.IsDownloaded) {
            [void]$downloaded.Add($update)
        }
    }
    $installed = 0
    $failedNames = New-Object System.Collections.Generic.List[string]
    foreach ($update in $selected) {
        if (-not $update.IsDownloaded) {
            $failedNames.Add("$($update.Title) (download)")
        }
    }
    $rebootRequired = $false
    if ($downloaded.Count -gt 0) {
        $installer = $session.CreateUpdateInstaller()
        $installer.ForceQuiet = $true
        $installer.AllowSourcePrompts = $false
        $installer.Updates = $downloaded
        # Install() never restarts by itself; the reboot stage does that after approval.
        $result = $installer.Install()
        $rebootRequired = [bool]$result.RebootRequired
        for ($i = 0; $i -lt $downloaded.Count; $i++) {
            $code = $result.GetUpdateResult($i).ResultCode
            if ($code -eq 2 -or $code -eq 3) {
                $installed++
            }
            else {
                $failedNames.Add("$($downloaded.Item($i).Title) (result $code)")
            }
        }
    }
    $script:PpDetail = "installed=$installed failed=$($failedNames.Count) rebootRequired=$($rebootRequired.ToString().ToLowerInvariant()) manager=wua"
    if ($failedNames.Count -gt 0) {
        throw ('not installed: ' + ($failedNames -join '; '))
    }
}
