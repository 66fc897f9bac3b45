# Compare: this run's pre and post inventories of this instance -> s3://Bucket/OutputPrefix<id>.csv,
# one row per post row whose (name, version) was not in pre; previous_version lists the pre
# versions of that name that are gone ('' for a new update).
Read-PpParametersFromEnv
$PrePrefix = [string]$env:SSM_PrePrefix
$PostPrefix = [string]$env:SSM_PostPrefix
$OutputPrefix = [string]$env:SSM_OutputPrefix

Invoke-PpDocument -Work {
    Test-PpPrefix -Name PrePrefix -Value $PrePrefix
    Test-PpPrefix -Name PostPrefix -Value $PostPrefix
    Test-PpPrefix -Name OutputPrefix -Value $OutputPrefix
    $preFile = Join-Path $script:PpWork 'pre.csv'
    $postFile = Join-Path $script:PpWork 'post.csv'
    Receive-PpS3Object -Key "$PrePrefix$script:InstanceId.csv" -Path $preFile
    Receive-PpS3Object -Key "$PostPrefix$script:InstanceId.csv" -Path $postFile
    $pre = @(Import-Csv -LiteralPath $preFile)
    $post = @(Import-Csv -LiteralPath $postFile)
    $comparedAt = Get-PpNow

    $preVersions = @{}
    foreach ($row in $pre) {
        if (-not $preVersions.ContainsKey($row.name)) {
            $preVersions[$row.name] = New-Object System.Collections.Generic.List[string]
        }
        $preVersions[$row.name].Add($row.version)
    }
    $postPairs = @{}
    foreach ($row in $post) {
        $postPairs["$($row.name)`t$($row.version)"] = $true
    }

    $lines = New-Object System.Collections.Generic.List[string]
    $lines.Add('instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at')
    foreach ($row in $post) {
        $previous = @()
        if ($preVersions.ContainsKey($row.name)) {
            if ($preVersions[$row.name].Contains($row.version)) {
                continue
            }
            $previous = @($preVersions[$row.name] | Where-Object { -not $postPairs.ContainsKey("$($row.name)`t$_") })
        }
        $lines.Add((ConvertTo-PpCsvRow @($row.instance_id, $row.owner, $row.domain, $row.application, $row.name, $row.version, ($previous -join ';'), $row.installed_on, $comparedAt)))
    }
    $csv = Join-Path $script:PpWork 'compare.csv'
    Write-PpLines -Path $csv -Lines $lines.ToArray()
    Send-PpS3Object -Path $csv -Key "$OutputPrefix$script:InstanceId.csv"
    $script:PpDetail = "$($lines.Count - 1) new or changed updates"
}
